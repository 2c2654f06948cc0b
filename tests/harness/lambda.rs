//! The real `bootstrap` binary under cargo-lambda's local Lambda Runtime API (`cargo lambda watch`/`invoke`
//! from the project's .venv, on 127.0.0.1): used by the end-to-end test and by `make demo`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{free_port, repo, unique, venv_path};

/// `cargo lambda watch` serving the bootstrap binary; stopped (with the function) when dropped. What the function
/// writes (its JSON logs, and the metrics' EMF lines on stdout) is kept in a file, as Lambda keeps it in CloudWatch.
pub struct Watch {
    child: Child,
    port: u16,
    output: std::path::PathBuf,
}

impl Watch {
    pub fn start(env: &[(String, String)]) -> Watch {
        let port = free_port();
        let output = std::env::temp_dir().join(format!("{}.log", unique("keyguard-lambda-output")));
        let file = std::fs::File::create(&output).expect("the function's output file");
        let child = Command::new("cargo")
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .args(["--package", "keyguard-lambda", "--bin", "bootstrap", "--ignore-changes", "--quiet"])
            .env("PATH", venv_path())
            .envs(env.iter().cloned())
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("output file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("cargo lambda watch (run `make venv`)");
        let watch = Watch { child, port, output };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return watch;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cargo lambda watch did not listen on {port}")
    }

    /// Invokes the function; Ok(response) or Err(error output).
    pub fn invoke(&self, event: &Value) -> Result<Value, String> {
        let file = std::env::temp_dir().join(format!("{}.json", unique("keyguard-e2e-event")));
        std::fs::write(&file, event.to_string()).unwrap();
        let out = Command::new("cargo")
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(&file)
            .arg("bootstrap")
            .env("PATH", venv_path())
            .current_dir(repo())
            .output()
            .expect("cargo lambda invoke");
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            Ok(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("response {stdout:?}: {e}")))
        } else {
            Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }
}

impl Watch {
    /// Everything the function (and cargo-lambda) wrote so far, line by line.
    pub fn output(&self) -> Vec<String> {
        std::fs::read_to_string(&self.output).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SIGTERM lets cargo-lambda stop the function it runs; then reap it.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.output);
    }
}
