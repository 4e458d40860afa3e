//! Every data format, read from small files the tests write, and the errors
//! for bad ones.

use crate::support::tempdir;
use pf::data::{self, DataSource, LoadOptions};
use std::io::Write;
use std::path::Path;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An MNIST folder with `n_train` / `n_test` 4×4 images; pixel = label * 20.
fn write_mnist(dir: &Path, n_train: u32, n_test: u32, gz: bool) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = labels
            .iter()
            .flat_map(|&l| std::iter::repeat_n(l * 20, 16))
            .collect();
        let files = [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx_bytes(&[n, 4, 4], &pixels),
            ),
            (
                format!("{prefix}-labels-idx1-ubyte"),
                idx_bytes(&[n], &labels),
            ),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

fn load(source: &str) -> anyhow::Result<data::Splits> {
    let src: DataSource = source.parse().map_err(anyhow::Error::msg)?;
    data::load(&src, &LoadOptions::default())
}

fn err(source: &str) -> String {
    format!("{:#}", load(source).expect_err("loading fails"))
}

#[test]
fn embedded_digits_have_the_fixed_stratified_split() {
    let s = load("digits").unwrap();
    assert_eq!([s.train.len(), s.val.len(), s.test.len()], [1257, 180, 360]);
    assert_eq!(s.train.shape, [1, 8, 8]);
    // Every class appears in every split, in proportion (±2 of the expected).
    for split in [&s.train, &s.val, &s.test] {
        let mut counts = [0usize; 10];
        for &l in &split.labels {
            counts[l as usize] += 1;
        }
        for c in counts {
            let expected = split.len() as f64 / 10.0;
            assert!(
                (c as f64 - expected).abs() <= 0.05 * split.len() as f64 + 2.0,
                "{counts:?}"
            );
        }
    }
    // The split never changes: a second load is identical.
    let again = load("digits").unwrap();
    assert_eq!(again.test.labels, s.test.labels);
    assert_eq!(again.test.pixels, s.test.pixels);
    assert!(s.train.pixels.iter().all(|&p| p <= 16));
}

#[test]
fn mnist_idx_raw_and_gzip() {
    for gz in [false, true] {
        let d = tempdir();
        write_mnist(d.path(), 50, 20, gz);
        let s = load(&format!("mnist:{}", d.path().display())).unwrap();
        assert_eq!([s.train.len(), s.val.len(), s.test.len()], [45, 5, 20]);
        assert_eq!(s.train.shape, [1, 4, 4]);
        assert_eq!(s.test.sample(3), &[60u8; 16]);
        assert_eq!(s.test.labels[3], 3);
        // Detected without the `mnist:` prefix too.
        assert_eq!(
            load(&d.path().display().to_string()).unwrap().test.len(),
            20
        );
    }
}

#[test]
fn truncated_and_mismatched_idx_files_are_named() {
    let d = tempdir();
    write_mnist(d.path(), 30, 10, false);
    let images = d.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 7]).unwrap();
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );

    let d = tempdir();
    write_mnist(d.path(), 30, 10, false);
    std::fs::write(
        d.path().join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[9], &[1; 9]),
    )
    .unwrap();
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(e.contains("10 images") && e.contains("9 labels"), "{e}");

    let d = tempdir();
    write_mnist(d.path(), 30, 10, true);
    let gz = d.path().join("train-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );

    let d = tempdir();
    write_mnist(d.path(), 30, 10, false);
    std::fs::write(
        d.path().join("train-images-idx3-ubyte"),
        b"\x01\x02\x03\x04",
    )
    .unwrap();
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(e.contains("not an IDX file"), "{e}");

    let d = tempdir();
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("fetch-mnist"),
        "{e}"
    );
}

fn cifar_batch(n: usize, offset: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let label = (i % 10) as u8;
        v.push(label);
        v.extend(std::iter::repeat_n(
            label.wrapping_mul(10).wrapping_add(offset),
            3072,
        ));
    }
    v
}

#[test]
fn cifar10_binary_batches() {
    let d = tempdir();
    std::fs::write(d.path().join("data_batch_1.bin"), cifar_batch(20, 0)).unwrap();
    std::fs::write(d.path().join("data_batch_2.bin"), cifar_batch(20, 1)).unwrap();
    std::fs::write(d.path().join("test_batch.bin"), cifar_batch(10, 2)).unwrap();
    let s = load(&d.path().display().to_string()).unwrap();
    assert_eq!([s.train.len(), s.val.len(), s.test.len()], [36, 4, 10]);
    assert_eq!(s.test.shape, [3, 32, 32]);
    assert_eq!(s.test.sample(4)[0], 42);
    assert_eq!(s.test.labels[4], 4);
}

#[test]
fn bad_cifar10_files_are_named() {
    let d = tempdir();
    let mut b = cifar_batch(3, 0);
    b.truncate(b.len() - 100);
    std::fs::write(d.path().join("data_batch_1.bin"), b).unwrap();
    std::fs::write(d.path().join("test_batch.bin"), cifar_batch(2, 0)).unwrap();
    let e = err(&format!("cifar10:{}", d.path().display()));
    assert!(
        e.contains("data_batch_1.bin") && e.contains("truncated"),
        "{e}"
    );

    let mut b = cifar_batch(3, 0);
    b[3073] = 11;
    std::fs::write(d.path().join("data_batch_1.bin"), b).unwrap();
    let e = err(&format!("cifar10:{}", d.path().display()));
    assert!(e.contains("record 1 has label 11"), "{e}");

    std::fs::write(d.path().join("data_batch_1.bin"), cifar_batch(3, 0)).unwrap();
    std::fs::remove_file(d.path().join("test_batch.bin")).unwrap();
    let e = err(&format!("cifar10:{}", d.path().display()));
    assert!(e.contains("test_batch.bin"), "{e}");
}

fn write_png(path: &Path, shade: u8, size: u32) {
    let img = image::RgbImage::from_pixel(size, size, image::Rgb([shade, 255 - shade, 7]));
    img.save(path).unwrap();
}

#[test]
fn image_folders_with_and_without_split_folders() {
    let d = tempdir();
    for (c, class) in ["cat", "dog"].iter().enumerate() {
        let dir = d.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..10 {
            write_png(&dir.join(format!("{i}.png")), (c * 100) as u8, 12);
        }
    }
    let src: DataSource = format!("folder:{}", d.path().display()).parse().unwrap();
    let s = data::load(
        &src,
        &LoadOptions {
            val_fraction: 0.25,
            image_size: 8,
        },
    )
    .unwrap();
    assert_eq!(s.train.len() + s.val.len() + s.test.len(), 20);
    assert_eq!(s.test.len(), 4);
    assert_eq!(s.train.shape, [3, 8, 8]);
    assert_eq!(s.train.classes, 2);
    // Channels first: R plane, then G, then B.
    let dog = s.test.labels.iter().position(|&l| l == 1).unwrap();
    let px = s.test.sample(dog);
    assert_eq!((px[0], px[64], px[128]), (100, 155, 7));

    let d = tempdir();
    for split in ["train", "test"] {
        for class in ["a", "b", "c"] {
            let dir = d.path().join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..4 {
                write_png(&dir.join(format!("{i}.png")), 30, 5);
            }
        }
    }
    let s = load(&d.path().display().to_string()).unwrap();
    assert_eq!(s.test.len(), 12);
    assert_eq!(s.train.classes, 3);
    assert_eq!(s.train.shape, [3, 32, 32]);
}

#[test]
fn a_corrupt_image_is_named() {
    let d = tempdir();
    for class in ["a", "b"] {
        let dir = d.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        write_png(&dir.join("ok.png"), 1, 4);
    }
    std::fs::write(
        d.path().join("b").join("broken.png"),
        b"\x89PNG\r\n\x1a\nnope",
    )
    .unwrap();
    let e = err(&format!("folder:{}", d.path().display()));
    assert!(
        e.contains("broken.png") && e.contains("not a readable image"),
        "{e}"
    );
    let e = err("/definitely/not/here");
    assert!(e.contains("neither `digits` nor an existing folder"), "{e}");
}

#[test]
fn resizing_keeps_labels_and_sets_the_shape() {
    let s = load("digits").unwrap().resized(16, 16);
    assert_eq!(s.train.shape, [1, 16, 16]);
    assert_eq!(s.train.pixels.len(), s.train.len() * 256);
}

#[test]
fn crop_flip_augmentation_shifts_and_mirrors_within_four_pixels() {
    use candle_core::Device;
    use pf::data::{Augment, Batcher, Normalization};
    // One 3×12×12 image with distinct pixel values.
    let pixels: Vec<u8> = (0..3 * 144).map(|i| (i % 251) as u8).collect();
    let data = pf::data::Dataset {
        pixels: pixels.clone(),
        max_value: 255.0,
        shape: [3, 12, 12],
        labels: vec![0],
        classes: 1,
    };
    let norm = Normalization {
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    };
    let batcher = Batcher::new(&data, norm, &Device::Cpu);
    let mut rng = pf::rng::stream(5, &["augment-test"]);
    let original = |c: usize, y: isize, x: isize| -> f32 {
        if !(0..12).contains(&y) || !(0..12).contains(&x) {
            0.0
        } else {
            pixels[c * 144 + y as usize * 12 + x as usize] as f32 / 255.0
        }
    };
    let mut flips = 0;
    for _ in 0..40 {
        let b = batcher.batch(&[0], Augment::CropFlip, &mut rng).unwrap();
        let out = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Find the shift and flip that explain every output pixel.
        let mut found = None;
        'search: for flip in [false, true] {
            for dy in -4isize..=4 {
                for dx in -4isize..=4 {
                    let ok = (0..3).all(|c| {
                        (0..12).all(|y| {
                            (0..12).all(|x| {
                                let sx = if flip { 11 - x } else { x } as isize + dx;
                                (out[c * 144 + y * 12 + x] - original(c, y as isize + dy, sx)).abs()
                                    < 1e-6
                            })
                        })
                    });
                    if ok {
                        found = Some(flip);
                        break 'search;
                    }
                }
            }
        }
        flips += usize::from(found.expect("output is a shifted, possibly mirrored copy"));
    }
    assert!((5..=35).contains(&flips), "{flips} of 40 flipped");
    // No augmentation: the image itself.
    let b = batcher.batch(&[0], Augment::None, &mut rng).unwrap();
    let out = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!((out[13] - pixels[13] as f32 / 255.0).abs() < 1e-6);
}

/// The MNIST folder of `write_mnist` with train label `index` set to `value`.
fn mnist_with_label(dir: &Path, index: usize, value: u8) -> std::path::PathBuf {
    write_mnist(dir, 30, 10, false);
    let path = dir.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8 + index] = value;
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn an_mnist_label_beyond_its_ten_classes_is_named() {
    let d = tempdir();
    mnist_with_label(d.path(), 7, 200);
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(
        e.contains("train-labels-idx1-ubyte")
            && e.contains("label 200 at index 7")
            && e.contains("0–9")
            && e.contains("201st class")
            && e.contains("fetch-mnist"),
        "{e}"
    );
    // The last valid label is accepted, the first invalid one is not.
    let d = tempdir();
    mnist_with_label(d.path(), 0, 9);
    assert_eq!(
        load(&format!("mnist:{}", d.path().display()))
            .unwrap()
            .train
            .classes,
        10
    );
    let d = tempdir();
    mnist_with_label(d.path(), 29, 10);
    let e = err(&format!("mnist:{}", d.path().display()));
    assert!(
        e.contains("label 10 at index 29") && e.contains("11th class"),
        "{e}"
    );
}

#[test]
fn training_on_an_mnist_label_out_of_range_fails_without_a_panic() {
    let d = tempdir();
    mnist_with_label(d.path(), 7, 200);
    let data = format!("mnist:{}", d.path().display());
    let out = d.path().join("m.pf");
    let o = crate::support::pf()
        .args(["train", "--data", &data, "--output"])
        .arg(&out)
        .output()
        .unwrap();
    crate::support::assert_refused(&o, "label 200 at index 7");
    let e = crate::support::stderr(&o);
    assert!(
        e.contains("train-labels-idx1-ubyte") && e.contains("0–9"),
        "{e}"
    );
    assert!(!out.exists());
}
