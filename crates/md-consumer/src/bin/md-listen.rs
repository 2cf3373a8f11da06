//! md-listen: joins the market-data channels and shows a live top of book and depth for the
//! chosen symbols; `--print` also prints every decoded message as JSON. See
//! `md_consumer::listen` (the same listener is `appliance md listen`).

use clap::Parser;

fn main() -> std::io::Result<()> {
    md_consumer::listen::run(md_consumer::listen::Args::parse())
}
