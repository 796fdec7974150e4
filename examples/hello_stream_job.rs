//! The seed's hello-world job: reads the 10 messages of `hello_input`, adds
//! `"processed_by": "hello_stream_job"` to each and writes them to `hello_output`.
//!
//! `cargo run --example hello_stream_job -- [-b localhost:9092] [-X key=value]`
//! Watch the result with e.g. `kcat -b localhost:9092 -t hello_output -C -e`.

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let args = hr_stream::HelloArgs::from_env();
    let n = hr_stream::run_hello_job(
        args.kafka.clone(),
        "hello_stream_job",
        &args.input,
        &args.output,
        10,
        Duration::from_secs(60),
    )?;
    println!(
        "processed {n} messages from {} into {}",
        args.input, args.output
    );
    Ok(())
}
