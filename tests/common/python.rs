//! Python packages from PyPI for the tests (the official SDKs, aiosmtpd), each set in a virtualenv of its own under `target/tmp/sdk`, installed on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn sdk_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk")
}

/// Run a setup command; a failure stops the test with its output.
pub fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Held while a virtualenv is checked or installed: tests run at once, and two installs into
/// one directory trip over each other on a fresh machine. Shared by every test of a process.
pub static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The python of a virtualenv holding these `(package, version)`s; `name` names the
/// virtualenv. `imports` are checked to tell whether it is complete.
pub fn python_with(name: &str, packages: &[(&str, &str)], imports: &[&str]) -> PathBuf {
    let _installing = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let environment = sdk_directory().join(format!("python-{name}"));
    let python = environment.join("bin").join("python");
    let check = imports
        .iter()
        .map(|module| format!("import {module}"))
        .collect::<Vec<_>>()
        .join("; ");
    let installed = python.exists()
        && Command::new(&python)
            .args(["-c", &check])
            .status()
            .is_ok_and(|status| status.success());
    if !installed {
        run(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&environment),
            "python3 -m venv (install python3 and python3-venv)",
        );
        let mut install = Command::new(&python);
        install.args(["-m", "pip", "install", "--quiet"]);
        for (package, version) in packages {
            install.arg(format!("{package}=={version}"));
        }
        run(&mut install, &format!("pip install {packages:?}"));
    }
    python
}

/// A script in `tests/sdk`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
        .join(name)
}

/// A Python program run by a test, killed when dropped.
pub struct PythonProcess {
    child: std::process::Child,
}

impl PythonProcess {
    pub fn spawn(python: &Path, script_name: &str, arguments: &[&std::ffi::OsStr]) -> Self {
        let child = Command::new(python)
            .arg(script(script_name))
            .args(arguments)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {script_name}: {error}"));
        PythonProcess { child }
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait (up to 30 s) for a file a helper writes once it is ready; its contents.
pub fn wait_for_file(path: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} was not written within 30 s",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The JSON lines of a helper's log (none yet: empty).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}
