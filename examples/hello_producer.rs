//! The seed's hello-world producer: sends 10 small JSON messages to `hello_input`.
//!
//! `cargo run --example hello_producer -- [-b localhost:9092] [-X key=value] [--topic hello_input]`

fn main() -> anyhow::Result<()> {
    let args = hr_stream::HelloArgs::from_env();
    hr_stream::produce_hello(args.kafka.clone(), &args.input, 10)?;
    println!("sent 10 messages to {}", args.input);
    Ok(())
}
