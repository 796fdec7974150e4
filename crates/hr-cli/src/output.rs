//! How a command talks back: colour only on a terminal, an error as its whole chain of causes,
//! and silence when the reader of a pipe has gone.

use std::error::Error;
use std::process::ExitCode;

/// Whether to write colour to `stream`: only a terminal, and never when `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>).
pub fn color_on(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `error` and the errors behind it, outermost first (`anyhow`'s `chain` for any error).
pub fn causes<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// Whether a write failed because the reader of standard output went away (`hr-sim | head`):
/// the reader has what it wanted, so the command ends quietly and successfully.
///
/// # Example
/// ```
/// use std::io::{Error, ErrorKind};
/// let closed = anyhow::Error::new(Error::from(ErrorKind::BrokenPipe)).context("writing records");
/// assert!(hr_cli::is_broken_pipe(closed.as_ref()));
/// assert!(!hr_cli::is_broken_pipe(anyhow::anyhow!("disk full").as_ref()));
/// ```
pub fn is_broken_pipe(error: &(dyn Error + 'static)) -> bool {
    causes(error).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, `outer: inner: innermost` (what `anyhow` prints for
/// `{:#}`).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    causes(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The end of a command: success for `Ok` and for a closed output pipe; otherwise
/// `<program>: error: <chain>` on standard error and exit code 1.
///
/// # Example
/// ```no_run
/// fn run() -> anyhow::Result<()> {
///     Ok(())
/// }
/// fn main() -> std::process::ExitCode {
///     hr_cli::finish("hr-tool", run())
/// }
/// ```
pub fn finish<E: AsRef<dyn Error>>(program: &str, result: Result<(), E>) -> ExitCode {
    finish_with(program, result, |_| 1)
}

/// [`finish`] with the exit code of a failure chosen by `code` (hr-batch: 2 for a missing input
/// path).
pub fn finish_with<E: AsRef<dyn Error>>(
    program: &str,
    result: Result<(), E>,
    code: impl FnOnce(&(dyn Error + 'static)) -> u8,
) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    let error = error.as_ref();
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    eprintln!("{program}: error: {}", error_chain(error));
    ExitCode::from(code(error))
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Wrapper {
        #[error("writing records failed")]
        Io(#[from] io::Error),
    }

    #[test]
    fn a_broken_pipe_is_found_under_any_wrapper() {
        let wrapped = anyhow::Error::new(Wrapper::from(io::Error::from(io::ErrorKind::BrokenPipe)))
            .context("sending records");
        assert!(is_broken_pipe(wrapped.as_ref()));
        let other = anyhow::Error::new(Wrapper::from(io::Error::other("disk full")));
        assert!(!is_broken_pipe(other.as_ref()));
        assert_eq!(finish("t", Err(wrapped)), ExitCode::SUCCESS);
    }

    #[test]
    fn the_chain_reads_like_anyhows() {
        let e = anyhow::Error::new(Wrapper::from(io::Error::other("disk full")))
            .context("writing out.jsonl");
        assert_eq!(error_chain(e.as_ref()), format!("{e:#}"));
        assert_eq!(
            error_chain(e.as_ref()),
            "writing out.jsonl: writing records failed: disk full"
        );
        assert_eq!(causes(e.as_ref()).count(), 3);
    }

    #[test]
    fn failures_take_the_code_asked_for() {
        let ok: Result<(), anyhow::Error> = Ok(());
        assert_eq!(finish("t", ok), ExitCode::SUCCESS);
        assert_eq!(finish("t", Err(anyhow::anyhow!("no"))), ExitCode::from(1));
        let missing = Err(anyhow::anyhow!("input path x does not exist"));
        assert_eq!(finish_with("t", missing, |_| 2), ExitCode::from(2));
    }
}
