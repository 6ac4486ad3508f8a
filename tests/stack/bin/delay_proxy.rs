//! `delay-proxy LISTEN UPSTREAM DELAY_MS`: a TCP proxy that holds every chunk of bytes for a
//! fixed time in each direction before passing it on, so that a client on this machine sees the
//! round trip of a server farther away (1 ms each way is about what a Lambda sees to a Neon
//! compute in the same region). The benchmark runs ferry and the standard tools through it.
//!
//! The delay is a latency, not a throughput limit: bytes read are stamped with their due time and
//! queued, and a writer sends each chunk when it is due while the reader goes on reading. Plain
//! threads and `nanosleep` keep the delay within about 0.1 ms of what was asked (an async
//! runtime's 1 ms timer wheel more than doubled it). Prints `listening on ADDRESS` once it
//! accepts connections.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    process::ExitCode,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay] = args.as_slice() else {
        eprintln!("usage: delay-proxy LISTEN_ADDRESS UPSTREAM_ADDRESS DELAY_MS");
        return ExitCode::from(2);
    };
    let Ok(delay) = delay.parse::<u64>().map(Duration::from_millis) else {
        eprintln!("delay-proxy: DELAY_MS must be a whole number of milliseconds, not {delay:?}");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("delay-proxy: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(address) => println!("listening on {address}"),
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            return ExitCode::from(1);
        }
    }
    for client in listener.incoming() {
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                eprintln!("delay-proxy: accept: {e}");
                continue;
            }
        };
        let upstream = upstream.clone();
        thread::spawn(move || match TcpStream::connect(&upstream) {
            Ok(server) => {
                if let Err(e) = relay(client, server, delay) {
                    eprintln!("delay-proxy: {e}");
                }
            }
            Err(e) => eprintln!("delay-proxy: cannot reach {upstream}: {e}"),
        });
    }
    ExitCode::SUCCESS
}

/// Both directions of one connection, each delayed.
fn relay(client: TcpStream, server: TcpStream, delay: Duration) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let upstream = {
        let (from, to) = (client.try_clone()?, server.try_clone()?);
        thread::spawn(move || one_way(from, to, delay))
    };
    one_way(server, client, delay);
    let _ = upstream.join();
    Ok(())
}

/// Reads from `from` and writes each chunk to `to` once `delay` has passed since it was read;
/// closes `to`'s write side when `from` ends.
fn one_way(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    // Bounded (64 chunks of at most 256 KiB): a reader slower than the sender holds the
    // sender back, as TCP's flow control would, instead of the proxy buffering the stream.
    let (queue, due) = mpsc::sync_channel::<(Instant, Vec<u8>)>(64);
    let writer = thread::spawn(move || {
        while let Ok((at, bytes)) = due.recv() {
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if queue
                    .send((Instant::now() + delay, buffer[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(queue);
    let _ = writer.join();
}
