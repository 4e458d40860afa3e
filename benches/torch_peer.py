"""PyTorch peer for `pf bench`: the same architectures, batch and thread count,
trained on the same kind of synthetic data, reporting images/s as JSON.

Used only by benches/train-throughput.sh, never by the tests or CI.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block with the option-A (zero-padding) shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = x[:, :, :: self.stride, :: self.stride]
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    def __init__(self, n, in_ch=3, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        layers, cin = [], 16
        for stage, planes in enumerate([16, 32, 64]):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(cin, planes, stride))
                cin = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def mobilenet_v1(width=1.0, in_ch=3, classes=10):
    def w(c):
        return max(int(c * width), 8)

    def cbr(cin, cout, k, s, g):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    mods, c = cbr(in_ch, w(32), 3, 2, 1), w(32)
    for out, s in plan:
        mods += cbr(c, c, 3, s, c) + cbr(c, w(out), 1, 1, 1)
        c = w(out)
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*mods)


def build(name, in_ch, classes, width):
    depth = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}
    if name in depth:
        return CifarResNet(depth[name], in_ch, classes)
    if name == "mobilenet_v1":
        return mobilenet_v1(width, in_ch, classes)
    raise SystemExit(f"unknown model {name}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--eval-batches", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.model, 3, 10, a.width)
    x = torch.randn(a.batch_size, 3, a.input_size, a.input_size)
    y = torch.arange(a.batch_size) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    model.train()
    for _ in range(a.warmup):
        step()
    # Medians of per-step times, as `pf bench` reports.
    train_times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        train_times.append(time.perf_counter() - t)
    model.eval()
    eval_times = []
    with torch.no_grad():
        model(x)
        for _ in range(a.eval_batches):
            t = time.perf_counter()
            model(x)
            eval_times.append(time.perf_counter() - t)
    train_s = statistics.median(train_times)
    eval_s = statistics.median(eval_times) if eval_times else float("inf")
    print(json.dumps({
        "model": a.model,
        "batch_size": a.batch_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "train_images_per_second": a.batch_size / train_s,
        "eval_images_per_second": a.batch_size / eval_s,
        "train_step_ms": train_s * 1000,
    }))


if __name__ == "__main__":
    main()
