//! The binary as a user runs it: no input files, an output path it did not write, `--force`,
//! `--config`, and its standard output in a pipe (CSV, quiet when the pipe closes).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn hr_batch(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hr-batch"));
    cmd.current_dir(dir);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("HR_") || var == "NO_COLOR" {
            cmd.env_remove(var);
        }
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn generate(dir: &Path, name: &str, alerts: &str, patients: &str) {
    let out = hr_batch(dir)
        .args([
            "generate",
            "--alerts",
            alerts,
            "--patients",
            patients,
            "--files",
            "2",
        ])
        .args(["--output", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn no_input_files_is_a_warning_naming_the_folder_and_strict_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("alerts")).unwrap();
    std::fs::write(dir.path().join("alerts/a.json"), "{}\n").unwrap();
    let out = hr_batch(dir.path())
        .args(["--input", "alerts", "--output", "report"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: no *.jsonl or *.parquet files under alerts"),
        "{err}"
    );

    let out = hr_batch(dir.path())
        .args(["--input", "alerts", "--output", "strict-report", "--strict"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no *.jsonl or *.parquet files under alerts"),
        "{err}"
    );
    assert!(!dir.path().join("strict-report").exists());

    let out = hr_batch(dir.path())
        .args([
            "recompute",
            "--input",
            "alerts",
            "--output",
            "re.jsonl",
            "--strict",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no *.jsonl files under alerts"));
}

#[test]
fn an_unrelated_output_path_is_refused_and_force_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "alerts", "500", "3");
    std::fs::write(dir.path().join("notes.csv"), "my,own\nnotes,here\n").unwrap();
    std::fs::create_dir(dir.path().join("thesis")).unwrap();
    std::fs::write(dir.path().join("thesis/ch1.tex"), "x").unwrap();
    for target in ["notes.csv", "thesis"] {
        let out = hr_batch(dir.path())
            .args(["--input", "alerts", "--output", target, "-q"])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("refusing to replace {target}")),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.csv")).unwrap(),
        "my,own\nnotes,here\n"
    );
    assert!(dir.path().join("thesis/ch1.tex").exists());
    // generate will not replace them either.
    let out = hr_batch(dir.path())
        .args(["generate", "--alerts", "10", "--output", "thesis"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(dir.path().join("thesis/ch1.tex").exists());

    // An earlier report is replaced without --force; anything is with it.
    for _ in 0..2 {
        let out = hr_batch(dir.path())
            .args(["--input", "alerts", "--output", "report.csv", "-q"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = hr_batch(dir.path())
        .args([
            "--input",
            "alerts",
            "--output",
            "notes.csv",
            "-q",
            "--force",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(dir.path().join("notes.csv")).unwrap(),
        std::fs::read(dir.path().join("report.csv")).unwrap()
    );
}

#[test]
fn piped_output_is_csv_with_utc_timestamps_and_a_closed_pipe_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "alerts", "30000", "3000");
    let out = hr_batch(dir.path())
        .args(["--input", "alerts", "--output", "report"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(
            "patient_id,alert_type,alert_count,mean_avg_hr,min_hr,max_hr,first_window_start,last_window_start"
        )
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.len() > 3000,
        "every row, not a preview: {}",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.ends_with('Z')), "{:?}", &rows[..3]);
    assert!(!stdout.contains('│') && !stdout.contains('…'));

    // `hr-batch | head -1`
    let mut child = hr_batch(dir.path())
        .args(["--input", "alerts", "--output", "report"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("patient_id,"));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn settings_come_from_flags_then_variables_then_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "alerts", "300", "2");
    std::fs::write(
        dir.path().join("hr-stream.toml"),
        "bootstrap = \"ignored:9092\"\n[batch]\ninput = \"alerts\"\noutput = \"from-file.csv\"\nquiet = true\n",
    )
    .unwrap();
    let run = |cmd: &mut Command| -> Output {
        let out = cmd.arg("--config").arg("hr-stream.toml").output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        out
    };
    let out = run(&mut hr_batch(dir.path()));
    assert!(out.stdout.is_empty(), "quiet = true");
    assert!(dir.path().join("from-file.csv").is_file());
    run(hr_batch(dir.path()).env("HR_BATCH_OUTPUT", "from-env.csv"));
    assert!(dir.path().join("from-env.csv").is_file());
    run(hr_batch(dir.path())
        .env("HR_BATCH_OUTPUT", "from-env.csv")
        .args(["--output", "from-flag.csv"]));
    assert!(dir.path().join("from-flag.csv").is_file());

    std::fs::write(dir.path().join("bad.toml"), "[batch]\nimput = \"alerts\"\n").unwrap();
    let out = hr_batch(dir.path())
        .args(["--config", "bad.toml"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("unknown key `batch.imput`"),
        "{err}"
    );
}

#[test]
fn the_example_config_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "output/alerts", "100", "2");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr-stream.toml");
    let out = hr_batch(dir.path())
        .args(["--config", file, "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        dir.path()
            .join("output/alert_stats/part-00000.parquet")
            .is_file()
    );
}
