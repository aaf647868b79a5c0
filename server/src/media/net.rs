//! The media sockets: one UDP socket every peer shares, and the optional ICE-TCP listener on
//! the same port number, whose connections carry RFC 4571 frames (a two-byte length, then
//! the datagram). TCP connections run as small tasks that hand whole frames to the media loop
//! and write what it sends them; the UDP socket is read and written by the loop itself.

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The largest frame a TCP connection may carry (the length prefix allows 65535).
const MAX_FRAME: usize = 65_535;

/// Frames queued towards one TCP connection before further ones are dropped (a congested
/// TCP path loses media as a UDP one would, instead of growing a queue).
const TCP_QUEUE: usize = 256;

/// What a TCP connection reports to the media loop.
pub(super) enum TcpEvent {
    /// A connection was accepted; frames for it go to the sender.
    Opened(SocketAddr, mpsc::Sender<Bytes>),
    /// One frame arrived.
    Frame(SocketAddr, BytesMut),
    /// The connection ended.
    Closed(SocketAddr),
}

/// Binds the UDP socket (and the TCP listener, when ICE-TCP is on) on the first port of
/// `ports` where every needed socket is free. Port 0 lets the system choose.
pub(super) fn bind(
    ip: std::net::IpAddr,
    ports: (u16, u16),
    tcp: bool,
) -> std::io::Result<(std::net::UdpSocket, Option<std::net::TcpListener>)> {
    let mut last = None;
    for port in ports.0..=ports.1 {
        let udp = match std::net::UdpSocket::bind((ip, port)) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let listener = if tcp {
            match std::net::TcpListener::bind(udp.local_addr()?) {
                Ok(l) => Some(l),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            }
        } else {
            None
        };
        udp.set_nonblocking(true)?;
        if let Some(l) = &listener {
            l.set_nonblocking(true)?;
        }
        return Ok((udp, listener));
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("empty port range")))
}

/// Accepts ICE-TCP connections until the loop is gone.
pub(super) async fn accept(listener: tokio::net::TcpListener, events: mpsc::Sender<TcpEvent>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            () = events.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, peer, events.clone()));
    }
}

/// Runs one ICE-TCP connection: frames in to the loop, frames out from it.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
) {
    let (mut read, mut write) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
    if events.send(TcpEvent::Opened(peer, out_tx)).await.is_err() {
        return;
    }
    let writer = async move {
        while let Some(frame) = out_rx.recv().await {
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            if write.write_all(&len.to_be_bytes()).await.is_err()
                || write.write_all(&frame).await.is_err()
            {
                return;
            }
        }
    };
    let reader = async {
        let mut len = [0u8; 2];
        loop {
            if read.read_exact(&mut len).await.is_err() {
                return;
            }
            let n = usize::from(u16::from_be_bytes(len));
            let mut frame = BytesMut::zeroed(n.min(MAX_FRAME));
            if read.read_exact(&mut frame).await.is_err() {
                return;
            }
            if events.send(TcpEvent::Frame(peer, frame)).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the connection.
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    let _ = events.send(TcpEvent::Closed(peer)).await;
}
