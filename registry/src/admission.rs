//! Applying a policy to one component, before any of its code runs.
//!
//! [`Gate::admit`] looks at the component's bytes and its side files
//! (`NAME.manifest.json`, `NAME.sig.json`), decides, logs the decision to
//! the audit log, and on refusal names the rule.
//!
//! ## What makes a plugin built in
//!
//! Only pf's own install folders ([`Gate::builtin_dirs`]): the folders the
//! host locates from its own executable (`PREFIX/share/pf/plugins` beside
//! `PREFIX/bin/pf`, `target/plugins` beside a cargo build's
//! `target/PROFILE/pf`), never the folder a plugin comes from, `PF_PLUGIN_PATH`
//! or the current directory. A component is built in when it lies in such a
//! folder and that folder's `plugins.lock` pins its name with its digest. A
//! `plugins.lock` anywhere else is ignored: writing one beside an unsigned
//! plugin makes it no more trusted than it was.
//!
//! The digests are not embedded in the binary because pf builds its plugins
//! after itself (`scripts/build-plugins.sh` runs `pf plugin build` with the
//! freshly built pf, and `scripts/install.sh` installs the lock it writes
//! beside the binary): the binary cannot know them when it is compiled.
//! Whoever can write pf's install folder can replace pf itself, so the lock
//! there is as trustworthy as the binary.
//!
//! ## The rules, in the order they are checked
//!
//! Signatures come before anything else the plugin supplies: the manifest is
//! parsed only once the signatures over its bytes (and over the component's
//! digest, computed by pf) verify. A refusal after a failed signature names
//! the most precise cause it can see (a manifest that does not parse, a
//! component changed after signing, else the signature).
//!
//! | rule | refuses |
//! |---|---|
//! | `builtin.digest` | a component in pf's install folder whose bytes differ from its `plugins.lock` |
//! | `manifest.valid` | a manifest or signature file that does not parse |
//! | `manifest.component` | a component whose digest is not the manifest's |
//! | `signature.valid` | a signature that does not verify (tampered manifest) |
//! | `manifest.world` | a manifest whose kind or contract is not the component's |
//! | `worlds` | a world or contract version the policy does not allow |
//! | `signatures.allow_unsigned_flag` | `--allow-unsigned` where the policy forbids it |
//! | `signatures.required` | an unsigned plugin, or one signed only by untrusted keys |
//! | `limits.max_memory_mib`, `limits.max_fuel_millions`, `limits.max_tensors` | sandbox limits, given or asked for in the manifest, above the caps |
//! | `limits.max_trials` | a search budget above the cap |
//! | `audit_log` | a decision that cannot be written to the policy's audit log |
//!
//! ## The rules that admit
//!
//! An allowed plugin is logged with the rule that let it in (its reason says
//! how: the lock and folder, the key and publisher, the flag or policy),
//! and warnings for anything a user should know (unsigned, untrusted signer):
//!
//! | rule | admits |
//! |---|---|
//! | `builtin.install_lock` | a component pinned, with its digest, by the `plugins.lock` of pf's install folder it lies in |
//! | `signatures.trusted` | a plugin signed by a key of a publisher the policy trusts |
//! | `signatures.untrusted` | a plugin validly signed by keys nobody trusts, where the policy does not require signatures (or `--allow-unsigned` is given) |
//! | `unsigned.allow_unsigned_flag` | an unsigned plugin, by `--allow-unsigned` where the policy requires signatures but allows the flag |
//! | `unsigned.policy` | an unsigned plugin, where the policy does not require signatures |

use crate::audit::{self, Entry};
use crate::keys::{PublicKey, SignatureFile};
use crate::lock::Lock;
use crate::policy::Policy;
use crate::{read_capped, sha256, Digest, Manifest, PluginKind, SideFiles};
use std::path::{Path, PathBuf};

/// What a component is, as far as pf can tell without running it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The component file.
    pub path: &'a Path,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// The world it exports (from the component's own type information).
    pub kind: PluginKind,
    /// The contract version it speaks.
    pub contract: &'a str,
}

/// What the plugin would be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Memory cap per instance, MiB.
    pub memory_mib: u64,
    /// Fuel per call, millions of instructions.
    pub fuel_millions: u64,
    /// Tensor handles.
    pub tensors: u32,
    /// Trials of the search it takes part in, if any.
    pub trials: Option<u32>,
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// Pinned, with its digest, by the `plugins.lock` of pf's install
    /// folder it lies in ([`Gate::builtin_dirs`]).
    Builtin {
        /// That `plugins.lock`.
        lock: PathBuf,
    },
    /// Signed; `trusted` names the policy's publisher if one of the keys is
    /// trusted.
    Signed {
        /// The keys that signed, with the names they gave.
        keys: Vec<(String, PublicKey)>,
        /// The trusted publisher among them, if any.
        trusted: Option<String>,
    },
    /// No signature.
    Unsigned,
}

impl Provenance {
    /// `builtin`, `signed` or `unsigned`.
    pub fn label(&self) -> &'static str {
        match self {
            Provenance::Builtin { .. } => "builtin",
            Provenance::Signed { .. } => "signed",
            Provenance::Unsigned => "unsigned",
        }
    }

    /// Every signer with its key, e.g. `alice (ed25519:…), bob (ed25519:…)`.
    pub fn signers(&self) -> String {
        match self {
            Provenance::Signed { keys, .. } => keys
                .iter()
                .map(|(n, k)| format!("{n} ({k})"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        }
    }

    /// The signer to report: the trusted publisher, else the first key.
    pub fn signer(&self) -> Option<String> {
        match self {
            Provenance::Signed {
                trusted: Some(t), ..
            } => Some(t.clone()),
            Provenance::Signed { keys, .. } => keys
                .first()
                .map(|(name, key)| format!("{name} ({key}, untrusted)")),
            _ => None,
        }
    }
}

/// A plugin allowed to load.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its manifest, if it has one.
    pub manifest: Option<Manifest>,
    /// Where it comes from.
    pub provenance: Provenance,
    /// SHA-256 of the component.
    pub digest: Digest,
    /// Things the user should know (printed as warnings).
    pub warnings: Vec<String>,
    /// The rule that admitted it (see the module documentation), e.g.
    /// `builtin.install_lock` or `signatures.trusted`.
    pub rule: &'static str,
    /// How that rule applied, in words: the lock and folder, the key and
    /// publisher, the flag or the policy.
    pub admitted_because: String,
}

/// Why a plugin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by rule `{rule}` of {policy}: {reason}")]
pub struct Refusal {
    /// The rule (see the module documentation).
    pub rule: &'static str,
    /// Why, and what to do about it.
    pub reason: String,
    /// The policy that refused.
    pub policy: String,
}

/// A policy in force, with the audit log and the flags of one pf command.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The policy.
    pub policy: Policy,
    /// Where decisions are appended (`None`: not logged).
    pub audit_log: Option<PathBuf>,
    /// The pf command, for the log.
    pub command: String,
    /// `--allow-unsigned` was given.
    pub allow_unsigned: bool,
    /// Judge components alone, ignoring the manifest and signatures beside
    /// them: for remaking the manifest of a fresh build, whose old manifest
    /// no longer matches.
    pub ignore_side_files: bool,
    /// pf's own install folders, whose `plugins.lock` pins the built-in
    /// plugins. The host fills them from the location of its executable;
    /// nothing a plugin supplies may add to them. Empty: nothing is built in.
    pub builtin_dirs: Vec<PathBuf>,
}

impl Gate {
    /// A gate with no policy (everything pf supports loads; unsigned plugins
    /// with a warning) and no audit log: for library use and tests.
    pub fn open() -> Gate {
        Gate {
            policy: Policy::default(),
            audit_log: None,
            command: String::new(),
            allow_unsigned: false,
            ignore_side_files: false,
            builtin_dirs: Vec::new(),
        }
    }

    /// Decides on one component, and logs the decision.
    pub fn admit(&self, cand: &Candidate<'_>, grant: &Grant) -> Result<Admitted, Refusal> {
        let digest = sha256(cand.bytes);
        let mut facts = Facts {
            name: cand
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: None,
            provenance: Provenance::Unsigned,
        };
        let decision = self.decide(cand, grant, digest, &mut facts);
        let (decision_label, rule, reason) = match &decision {
            Ok(a) => (
                "allowed",
                a.rule,
                std::iter::once(a.admitted_because.clone())
                    .chain(a.warnings.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(r) => ("refused", r.rule, r.reason.clone()),
        };
        if let Some(log) = &self.audit_log {
            let entry = Entry {
                time: audit::now_rfc3339(),
                command: self.command.clone(),
                plugin: facts.name.clone(),
                version: facts.version.clone(),
                digest: digest.to_string(),
                path: cand.path.display().to_string(),
                provenance: facts.provenance.label().into(),
                signer: facts.provenance.signer(),
                decision: decision_label.into(),
                rule: rule.into(),
                reason,
                policy: self.policy.source.as_ref().map(|p| p.display().to_string()),
            };
            if let Err(e) = audit::append(log, &entry) {
                if self.policy.audit_log.is_some() {
                    return Err(self.refuse(
                        "audit_log",
                        format!(
                            "the decision cannot be written to the audit log {}: {e}",
                            log.display()
                        ),
                    ));
                }
                // The default log is a convenience; failing to write it must
                // not stop work. The caller sees it as a warning.
                return decision.map(|mut a| {
                    a.warnings
                        .push(format!("cannot write the audit log {}: {e}", log.display()));
                    a
                });
            }
        }
        decision
    }

    /// Checks a search budget against the policy's `max_trials`.
    pub fn check_trials(&self, trials: u32) -> Result<(), Refusal> {
        match self.policy.limits.max_trials {
            Some(cap) if trials > cap => Err(self.refuse(
                "limits.max_trials",
                format!("this search has a search budget (trials) of {trials}, above the policy's cap of {cap}"),
            )),
            _ => Ok(()),
        }
    }

    fn refuse(&self, rule: &'static str, reason: String) -> Refusal {
        Refusal {
            rule,
            reason,
            policy: if self.policy.source.is_some() {
                format!("policy {}", self.policy.describe_source())
            } else {
                "pf's default policy".into()
            },
        }
    }

    fn decide(
        &self,
        cand: &Candidate<'_>,
        grant: &Grant,
        digest: Digest,
        facts: &mut Facts,
    ) -> Result<Admitted, Refusal> {
        let mut warnings = Vec::new();
        let mut manifest = None;
        if let Some(lock) = self.builtin_lock(cand, &facts.name, &digest)? {
            facts.provenance = Provenance::Builtin { lock };
        } else if !self.ignore_side_files {
            let side = SideFiles::of(cand.path);
            if side.signatures.is_file() && !side.manifest.is_file() {
                return Err(self.refuse(
                    "manifest.valid",
                    format!(
                        "{} has signatures but no manifest {}; signatures cover a manifest, so it cannot be checked",
                        cand.path.display(),
                        side.manifest.display()
                    ),
                ));
            }
            if side.manifest.is_file() {
                let manifest_bytes = read_capped(&side.manifest, pf_manifest::MAX_BYTES as u64)
                    .map_err(|e| {
                        self.refuse(
                            "manifest.valid",
                            format!("{}: {e}", side.manifest.display()),
                        )
                    })?;
                // Signatures first: nothing in the manifest is looked at
                // before they verify.
                if side.signatures.is_file() {
                    facts.provenance = self
                        .check_signatures(&side.signatures, &manifest_bytes, &digest)
                        .map_err(|refusal| {
                            self.explain_bad_signature(
                                refusal,
                                cand,
                                &side,
                                &manifest_bytes,
                                &digest,
                            )
                        })?;
                }
                let m = self.parse_manifest(&side.manifest, &manifest_bytes)?;
                facts.name = m.name.clone();
                facts.version = Some(m.version.to_string());
                if m.component != digest {
                    return Err(self.component_changed(cand, &side, &m, &digest));
                }
                if m.kind != cand.kind || m.contract.to_string() != cand.contract {
                    return Err(self.refuse(
                        "manifest.world",
                        format!(
                            "the manifest says {}, but the component exports {}/{}@{}",
                            m.world(),
                            pf_manifest::PACKAGE,
                            cand.kind,
                            cand.contract
                        ),
                    ));
                }
                manifest = Some(m);
            }
        }

        let policy = &self.policy;
        if let Some(worlds) = &policy.worlds {
            let world = cand.kind.world_name();
            let version = semver::Version::parse(cand.contract).map_err(|_| {
                self.refuse(
                    "worlds",
                    format!("contract version `{}` is not semver", cand.contract),
                )
            })?;
            match worlds.get(world) {
                None => {
                    return Err(self.refuse(
                        "worlds",
                        format!(
                            "{} world plugins are not allowed (the policy allows: {})",
                            world,
                            if worlds.is_empty() {
                                "none".into()
                            } else {
                                worlds.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    ))
                }
                Some(req) if !req.matches(&version) => {
                    return Err(self.refuse(
                        "worlds",
                        format!(
                            "{}/{world}@{version} is not allowed: the policy requires contract {req} for {world} plugins",
                            pf_manifest::PACKAGE
                        ),
                    ))
                }
                Some(_) => {}
            }
        }

        let unsigned_flag_forbidden = self.allow_unsigned && !policy.signatures.allow_unsigned_flag;
        if unsigned_flag_forbidden {
            return Err(self.refuse(
                "signatures.allow_unsigned_flag",
                "--allow-unsigned is forbidden by this policy; sign the plugin and add its publisher's key under [[publishers]]".into(),
            ));
        }
        let (rule, admitted_because) = match &facts.provenance {
            Provenance::Builtin { lock } => (
                "builtin.install_lock",
                format!(
                    "built in: its digest is pinned in {}, in pf's own install folder",
                    lock.display()
                ),
            ),
            Provenance::Signed {
                trusted: Some(publisher),
                keys,
            } => (
                "signatures.trusted",
                format!(
                    "signed by trusted publisher {publisher} (keys: {})",
                    keys.iter()
                        .map(|(n, k)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Provenance::Signed { trusted: None, .. } => {
                let who = facts.provenance.signers();
                if policy.signatures.required && !self.allow_unsigned {
                    return Err(self.refuse(
                        "signatures.required",
                        format!(
                            "`{}` is signed only by {who}, a key this policy does not trust; add the publisher's key under [[publishers]] if you trust it",
                            facts.name
                        ),
                    ));
                }
                warnings.push(format!(
                    "`{}` is signed by {who}, which no policy trusts: it runs sandboxed, but nobody vouches for it",
                    facts.name
                ));
                (
                    "signatures.untrusted",
                    format!(
                        "signed by {who}, untrusted; {}",
                        if policy.signatures.required {
                            "--allow-unsigned lets it in"
                        } else {
                            "the policy does not require signatures"
                        }
                    ),
                )
            }
            Provenance::Unsigned => {
                if policy.signatures.required && !self.allow_unsigned {
                    return Err(self.refuse(
                        "signatures.required",
                        format!(
                            "`{}` ({}) is not signed, and this policy requires signatures; sign it (`pf plugin sign`) with a key the policy trusts{}",
                            facts.name,
                            cand.path.display(),
                            if policy.signatures.allow_unsigned_flag {
                                ", or pass --allow-unsigned"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                warnings.push(format!(
                    "`{}` ({}) is unsigned: it runs sandboxed, but nobody vouches for it",
                    facts.name,
                    cand.path.display()
                ));
                if policy.signatures.required {
                    (
                        "unsigned.allow_unsigned_flag",
                        "unsigned, let in by --allow-unsigned, which the policy allows".to_string(),
                    )
                } else {
                    (
                        "unsigned.policy",
                        "unsigned, and the policy does not require signatures".to_string(),
                    )
                }
            }
        };

        let caps = &policy.limits;
        let asked = manifest
            .as_ref()
            .map(|m| m.limits.clone())
            .unwrap_or_default();
        let limits = [
            (
                "limits.max_memory_mib",
                "a memory limit (MiB)",
                caps.max_memory_mib,
                grant.memory_mib,
                asked.memory_mib,
            ),
            (
                "limits.max_fuel_millions",
                "a fuel budget (millions)",
                caps.max_fuel_millions,
                grant.fuel_millions,
                asked.fuel_millions,
            ),
            (
                "limits.max_tensors",
                "a tensor handle cap",
                caps.max_tensors.map(u64::from),
                u64::from(grant.tensors),
                asked.tensors.map(u64::from),
            ),
        ];
        for (rule, what, cap, given, requested) in limits {
            let Some(cap) = cap else { continue };
            for (value, source) in [
                (Some(given), "this run gives it"),
                (requested, "its manifest asks for"),
            ] {
                if let Some(v) = value.filter(|&v| v > cap) {
                    return Err(self.refuse(
                        rule,
                        format!("{source} {what} of {v}, above the policy's cap of {cap}"),
                    ));
                }
            }
        }
        if let Some(trials) = grant.trials {
            self.check_trials(trials)?;
        }
        Ok(Admitted {
            manifest,
            provenance: facts.provenance.clone(),
            digest,
            warnings,
            rule,
            admitted_because,
        })
    }

    /// The `plugins.lock` that makes `cand` built in: the lock of the one of
    /// [`Gate::builtin_dirs`] the component lies in, when it pins the
    /// component's name. `Ok(None)` for a component outside those folders,
    /// or one their lock does not pin (a test fixture built beside them).
    fn builtin_lock(
        &self,
        cand: &Candidate<'_>,
        name: &str,
        digest: &Digest,
    ) -> Result<Option<PathBuf>, Refusal> {
        let Some(dir) = cand
            .path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok())
        else {
            return Ok(None);
        };
        let Some(install) = self
            .builtin_dirs
            .iter()
            .find(|b| b.canonicalize().is_ok_and(|b| b == dir))
        else {
            return Ok(None);
        };
        let lock = Lock::read_in(install).map_err(|e| self.refuse("builtin.digest", e))?;
        let Some(pinned) = lock.as_ref().and_then(|l| l.plugins.get(name)) else {
            return Ok(None);
        };
        if pinned != digest {
            return Err(self.refuse(
                "builtin.digest",
                format!(
                    "{} is built-in plugin `{name}`, pinned in {} as {pinned}, but the file is {digest}: it was changed or swapped after the build; rebuild the built-in plugins (scripts/build-plugins.sh) or reinstall pf",
                    cand.path.display(),
                    Lock::path_in(install).display()
                ),
            ));
        }
        Ok(Some(Lock::path_in(install)))
    }

    fn parse_manifest(&self, path: &Path, bytes: &[u8]) -> Result<Manifest, Refusal> {
        Manifest::from_json(bytes)
            .map_err(|e| self.refuse("manifest.valid", format!("{}: {e}", path.display())))
    }

    fn component_changed(
        &self,
        cand: &Candidate<'_>,
        side: &SideFiles,
        m: &Manifest,
        digest: &Digest,
    ) -> Refusal {
        self.refuse(
            "manifest.component",
            format!(
                "the component {} is {digest}, but its manifest {} is for {}: the component was changed after the manifest was made (and signed); get the published component again, or remake the manifest with `pf plugin manifest`",
                cand.path.display(),
                side.manifest.display(),
                m.component
            ),
        )
    }

    /// A signature that did not verify, refused by the most precise rule:
    /// a manifest that does not parse, a component changed after signing,
    /// else the signature itself. The manifest is read here only to word
    /// the refusal; it is already refused.
    fn explain_bad_signature(
        &self,
        refusal: Refusal,
        cand: &Candidate<'_>,
        side: &SideFiles,
        manifest_bytes: &[u8],
        digest: &Digest,
    ) -> Refusal {
        if refusal.rule != "signature.valid" {
            return refusal;
        }
        match self.parse_manifest(&side.manifest, manifest_bytes) {
            Err(unparsable) => unparsable,
            Ok(m) if m.component != *digest => self.component_changed(cand, side, &m, digest),
            Ok(_) => refusal,
        }
    }

    fn check_signatures(
        &self,
        path: &Path,
        manifest: &[u8],
        component: &Digest,
    ) -> Result<Provenance, Refusal> {
        let bytes = read_capped(path, crate::keys::MAX_BYTES)
            .map_err(|e| self.refuse("manifest.valid", format!("{}: {e}", path.display())))?;
        let file = SignatureFile::from_json(&bytes)
            .map_err(|e| self.refuse("manifest.valid", format!("{}: {e}", path.display())))?;
        if file.signatures.is_empty() {
            return Ok(Provenance::Unsigned);
        }
        let mut keys = Vec::new();
        let mut trusted = None;
        for sig in &file.signatures {
            sig.verify(manifest, component)
                .map_err(|e| self.refuse("signature.valid", format!("{}: {e}", path.display())))?;
            if trusted.is_none() {
                trusted = self.policy.publisher(&sig.key).map(|p| p.name.clone());
            }
            keys.push((sig.signer.clone(), sig.key));
        }
        Ok(Provenance::Signed { keys, trusted })
    }
}

struct Facts {
    name: String,
    version: Option<String>,
    provenance: Provenance,
}
