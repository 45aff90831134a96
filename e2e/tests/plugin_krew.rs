//! The kubectl plugin as krew installs it, with the real tools and no network: `make dist`'s
//! script (`kubectl-swh/dist.sh`) writes the archive and the manifest; krew's own
//! `validate-krew-manifest` accepts the manifest (including its install exercise, which finds
//! the LICENSE in the installed files); `kubectl krew install --manifest=… --archive=…` installs
//! it into a temporary KREW_ROOT, and `kubectl swh --version` runs from there. A wrong sha256
//! (in the manifest or of the archive) makes both fail.
//!
//! Offline: krew's random upgrade check is off (`KREW_NO_UPGRADE_CHECK`), `--manifest` skips
//! the index update, `--archive` replaces the download, and every HTTP(S) proxy variable points
//! at a closed loopback port, so any request krew might still try fails at once on loopback.

mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_yaml::Value;
use swh_e2e::testenv;
use tools::{root, run, run_ok, temp_dir, tools_bin};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where any HTTP(S) request krew tries goes: a closed port on loopback.
const DEAD_PROXY: &str = "http://127.0.0.1:9";

/// The folder of the real kubectl: `$SWH_K8S_BIN`, else what `e2e/controlplane/build.sh` prints
/// (cached; no cluster needed).
fn k8s_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SWH_K8S_BIN") {
            return PathBuf::from(dir);
        }
        let mut c = Command::new("bash");
        c.arg(root().join("e2e/controlplane/build.sh"))
            .stderr(Stdio::inherit());
        let out = c.output().expect("running e2e/controlplane/build.sh");
        assert!(out.status.success(), "e2e/controlplane/build.sh failed");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// The folder with the debug `kubectl-swh` and `kubectl_complete-swh` (built by `cargo build`).
fn plugin_dir() -> PathBuf {
    for b in ["kubectl-swh", "kubectl_complete-swh"] {
        let exe = testenv::workspace_bin(b);
        assert!(
            exe.exists(),
            "{} is missing: run `cargo build -p kubectl-swh` first",
            exe.display()
        );
    }
    testenv::workspace_bin("kubectl-swh")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn path_of(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push("/usr/local/bin:/usr/bin:/bin".into());
    parts.join(":")
}

/// A command with a clean environment: PATH as given, HOME and KREW_ROOT under `home`, no
/// upgrade check, every proxy variable at a dead loopback port.
fn offline(program: &Path, home: &Path, path: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", path)
        .env("HOME", home.join("home"))
        .env("KREW_ROOT", home.join("krew"))
        .env("KREW_NO_UPGRADE_CHECK", "1")
        .env("KUBECONFIG", home.join("no-kubeconfig"));
    for v in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        c.env(v, DEAD_PROXY);
    }
    c
}

struct Dist {
    archive: PathBuf,
    manifest: PathBuf,
}

/// Runs the dist script on the debug binaries into `out`, at a fixed SOURCE_DATE_EPOCH.
fn dist(out: &Path) -> Dist {
    let mut c = Command::new("bash");
    c.arg(root().join("kubectl-swh/dist.sh"))
        .args(["--bin-dir".as_ref(), plugin_dir().as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("DIST_URL")
        .current_dir(root());
    let printed = run_ok(c, None);
    let lines: Vec<&str> = printed.lines().collect();
    let name = format!("kubectl-swh_{VERSION}_linux_amd64.tar.gz");
    assert_eq!(
        lines,
        [
            out.join(&name).display().to_string(),
            out.join("swh.yaml").display().to_string()
        ],
        "dist.sh prints the archive and the manifest"
    );
    Dist {
        archive: out.join(name),
        manifest: out.join("swh.yaml"),
    }
}

fn sha256(file: &Path) -> String {
    let mut c = Command::new("sha256sum");
    c.arg(file);
    run_ok(c, None)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `validate-krew-manifest -manifest FILE`, with its install exercise kept offline: it runs
/// `kubectl krew install --manifest FILE -v=4` with an environment of only KREW_ROOT, KREW_OS,
/// KREW_ARCH and PATH, so `kubectl-krew` on that PATH is a wrapper that adds what keeps krew
/// offline (no upgrade check, dead proxies) and `--archive` (instead of the manifest's uri).
fn validate(manifest: &Path, archive: &Path, home: &Path) -> Output {
    let wrap = home.join("wrap");
    std::fs::create_dir_all(&wrap).expect("mkdir wrap");
    let script = format!(
        "#!/bin/sh\nexport KREW_NO_UPGRADE_CHECK=1 HTTP_PROXY={DEAD_PROXY} HTTPS_PROXY={DEAD_PROXY} \
         http_proxy={DEAD_PROXY} https_proxy={DEAD_PROXY}\nexec '{}' \"$@\" --archive='{}'\n",
        tools_bin().join("krew").display(),
        archive.display()
    );
    let krew = wrap.join("kubectl-krew");
    std::fs::write(&krew, script).expect("write kubectl-krew wrapper");
    let mut chmod = Command::new("chmod");
    chmod.arg("755").arg(&krew);
    run_ok(chmod, None);
    let path = path_of(&[&wrap, &k8s_bin()]);
    let mut c = offline(&tools_bin().join("validate-krew-manifest"), home, &path);
    c.arg("-manifest").arg(manifest);
    run(c, None)
}

/// `kubectl krew install --manifest=M --archive=A` into `home`'s KREW_ROOT, through the real
/// kubectl (which finds krew as the plugin `kubectl-krew` in the tools folder).
fn krew_install(manifest: &Path, archive: &Path, home: &Path) -> Output {
    let path = path_of(&[&tools_bin(), &k8s_bin()]);
    let mut c = offline(&k8s_bin().join("kubectl"), home, &path);
    c.arg("krew")
        .arg("install")
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!("--archive={}", archive.display()));
    run(c, None)
}

#[test]
fn make_dist_builds_a_krew_manifest_that_krew_validates_and_installs() {
    let tmp = temp_dir("krew");
    let d = dist(&tmp.join("dist"));

    // The archive: exactly the two binaries and the LICENSE, owned by 0/0, at SOURCE_DATE_EPOCH.
    let mut tar = Command::new("tar");
    tar.arg("--numeric-owner")
        .arg("--full-time")
        .arg("-tvzf")
        .arg(&d.archive)
        .env("TZ", "UTC");
    let listing = run_ok(tar, None);
    let entries: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = entries.iter().filter_map(|e| e.last().copied()).collect();
    assert_eq!(
        names,
        ["LICENSE", "kubectl-swh", "kubectl_complete-swh"],
        "{listing}"
    );
    for e in &entries {
        assert_eq!(e[1], "0/0", "owner: {listing}");
        assert_eq!(
            &e[3..5],
            ["2023-11-14", "22:13:20"],
            "mtime = SOURCE_DATE_EPOCH: {listing}"
        );
    }
    assert!(entries[0][0].starts_with("-rw-r--r--"), "{listing}");
    assert!(entries[1][0].starts_with("-rwxr-xr-x"), "{listing}");
    assert!(entries[2][0].starts_with("-rwxr-xr-x"), "{listing}");

    // Reproducible: the same binaries and epoch give the same bytes.
    let again = dist(&tmp.join("dist-again"));
    assert_eq!(
        sha256(&d.archive),
        sha256(&again.archive),
        "the archive is reproducible"
    );

    // The manifest, in krew's format, from the committed template.
    let manifest_text = std::fs::read_to_string(&d.manifest).expect("read swh.yaml");
    let m: Value = serde_yaml::from_str(&manifest_text).expect("manifest is YAML");
    assert_eq!(
        m["apiVersion"].as_str(),
        Some("krew.googlecontainertools.github.com/v1alpha2")
    );
    assert_eq!(m["kind"].as_str(), Some("Plugin"));
    assert_eq!(m["metadata"]["name"].as_str(), Some("swh"));
    let want_version = format!("v{VERSION}");
    assert_eq!(m["spec"]["version"].as_str(), Some(want_version.as_str()));
    let platforms = m["spec"]["platforms"].as_sequence().expect("platforms");
    assert_eq!(platforms.len(), 1, "{manifest_text}");
    let p = &platforms[0];
    assert_eq!(p["selector"]["matchLabels"]["os"].as_str(), Some("linux"));
    assert_eq!(p["selector"]["matchLabels"]["arch"].as_str(), Some("amd64"));
    assert_eq!(p["bin"].as_str(), Some("kubectl-swh"));
    let sha = sha256(&d.archive);
    assert_eq!(p["sha256"].as_str(), Some(sha.as_str()), "{manifest_text}");
    let uri = p["uri"].as_str().unwrap_or_default();
    assert!(
        uri.ends_with(&format!("/kubectl-swh_{VERSION}_linux_amd64.tar.gz")),
        "{uri}"
    );
    let template = std::fs::read_to_string(root().join("plugins/swh.yaml")).expect("template");
    let rendered = template
        .replace("{{VERSION}}", &want_version)
        .replace("{{URI}}", uri)
        .replace("{{SHA256}}", &sha);
    assert_eq!(
        manifest_text, rendered,
        "target/dist/swh.yaml is plugins/swh.yaml filled in"
    );

    // krew's validator, with its install exercise (offline, the archive instead of the uri).
    let v = validate(&d.manifest, &d.archive, &tmp.join("validate"));
    println!(
        "$ validate-krew-manifest -manifest {}\n{}",
        d.manifest.display(),
        text(&v)
    );
    assert!(v.status.success(), "validate-krew-manifest: {}", text(&v));
    let vt = text(&v);
    for step in [
        "structural validation OK",
        "all spec.platform[] items are used",
        "no overlapping spec.platform[].selector",
        "installed  spec.platforms[0]",
        "all 1 spec.platforms installed fine",
    ] {
        assert!(
            vt.contains(step),
            "validate-krew-manifest: no {step:?}: {vt}"
        );
    }

    // krew install into a temporary KREW_ROOT.
    let home = tmp.join("install");
    let i = krew_install(&d.manifest, &d.archive, &home);
    println!(
        "$ kubectl krew install --manifest={} --archive={}\n{}",
        d.manifest.display(),
        d.archive.display(),
        text(&i)
    );
    assert!(i.status.success(), "krew install: {}", text(&i));
    assert!(
        text(&i).contains("Installed plugin: swh"),
        "krew install: {}",
        text(&i)
    );
    let krew_root = home.join("krew");
    let store = krew_root.join("store/swh").join(&want_version);
    for f in ["kubectl-swh", "kubectl_complete-swh", "LICENSE"] {
        assert!(store.join(f).is_file(), "{} not installed", f);
    }
    let license = std::fs::read(store.join("LICENSE")).expect("installed LICENSE");
    assert_eq!(
        license,
        std::fs::read(root().join("LICENSE")).expect("LICENSE"),
        "the LICENSE is the repository's"
    );

    // The plugin from KREW_ROOT/bin, directly and through kubectl (no target/debug on PATH).
    let bin = krew_root.join("bin");
    let mut direct = Command::new(bin.join("kubectl-swh"));
    direct.arg("--version").env_clear();
    assert_eq!(
        run_ok(direct, None).trim(),
        format!("kubectl swh {VERSION}")
    );
    let path = path_of(&[&bin, &k8s_bin()]);
    let mut via = offline(&k8s_bin().join("kubectl"), &home, &path);
    via.args(["swh", "--version"]);
    assert_eq!(run_ok(via, None).trim(), format!("kubectl swh {VERSION}"));
    // `krew list` insists on an index: a local, empty git repository (never `krew update`).
    let mut git = Command::new("git");
    git.args(["-c", "init.defaultBranch=main", "init", "-q"])
        .arg(krew_root.join("index/default"));
    run_ok(git, None);
    let path = path_of(&[&tools_bin(), &k8s_bin()]);
    let mut list = offline(&k8s_bin().join("kubectl"), &home, &path);
    list.args(["krew", "list"]);
    let listed = run_ok(list, None);
    assert_eq!(listed.trim(), "detached/swh", "krew list");

    // A wrong sha256 in a copy of the manifest: krew refuses to install, and so does the
    // validator.
    let bad_dir = tmp.join("bad");
    std::fs::create_dir_all(&bad_dir).expect("mkdir bad");
    // The same sha256 with its first hex digit changed.
    let wrong = match sha.split_at_checked(1) {
        Some(("0", rest)) => format!("1{rest}"),
        Some((_, rest)) => format!("0{rest}"),
        None => panic!("empty sha256"),
    };
    let bad_manifest = bad_dir.join("swh.yaml");
    std::fs::write(&bad_manifest, manifest_text.replace(&sha, &wrong)).expect("write bad");
    let home = tmp.join("install-bad-sha");
    let i = krew_install(&bad_manifest, &d.archive, &home);
    assert!(!i.status.success(), "installed despite a wrong sha256");
    assert!(
        text(&i).contains("checksum does not match"),
        "krew install: {}",
        text(&i)
    );
    assert!(
        !home.join("krew/bin/kubectl-swh").exists(),
        "nothing installed with a wrong sha256"
    );
    let v = validate(&bad_manifest, &d.archive, &tmp.join("validate-bad"));
    assert!(!v.status.success(), "validated despite a wrong sha256");
    assert!(text(&v).contains("checksum does not match"), "{}", text(&v));

    // A corrupted copy of the archive under the right manifest: refused as well.
    let bad_archive = bad_dir.join(d.archive.file_name().expect("archive name"));
    let mut bytes = std::fs::read(&d.archive).expect("read archive");
    bytes.push(0);
    std::fs::write(&bad_archive, bytes).expect("write bad archive");
    let home = tmp.join("install-bad-archive");
    let i = krew_install(&d.manifest, &bad_archive, &home);
    assert!(!i.status.success(), "installed a corrupted archive");
    assert!(text(&i).contains("checksum does not match"), "{}", text(&i));
    assert!(!home.join("krew/bin/kubectl-swh").exists());

    let _ = std::fs::remove_dir_all(&tmp);
}
