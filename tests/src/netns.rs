//! Network namespaces joined by veth, for end-to-end tests that send real packets.
//!
//! Addresses are documentation ones only (192.0.2.0/24, 2001:db8::/32); packets never leave the
//! namespaces the test creates, and the namespaces are deleted on drop.
use std::{
    fs::File,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, UdpSocket},
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Runs `ip` in the root namespace (asserts success).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a namespace with loopback up.
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        let ns = Netns { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip` inside the namespace.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A command run inside the namespace's network stack only (mounts unchanged, so bpffs pins
    /// stay visible, unlike `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).arg("--").arg(program);
        c
    }

    /// Runs a command in the namespace and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().expect("nsenter")
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it opens live there).
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = File::open(&path).expect("open netns");
            // SAFETY: a valid namespace fd; setns affects this thread only.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}");
            f()
        })
    }

    /// Runs `f` inside the namespace and waits for it.
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("netns thread")
    }

    /// A loopback port of the test's own namespace whose connections are relayed to `target`
    /// inside this namespace (a server listening on the namespace's loopback, reached by a
    /// client of the root namespace such as a browser). Relays for the life of the process.
    pub fn forward(&self, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a relay port");
        let addr = listener.local_addr().expect("relay address");
        // Sockets opened by a thread that entered the namespace live there.
        type Reply = std::sync::mpsc::Sender<std::io::Result<std::net::TcpStream>>;
        let (ask, asked) = std::sync::mpsc::channel::<Reply>();
        drop(self.spawn(move || {
            for reply in asked {
                let _ = reply.send(std::net::TcpStream::connect(target));
            }
        }));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (tx, rx) = std::sync::mpsc::channel();
                if ask.send(tx).is_err() {
                    return;
                }
                let Ok(Ok(server)) = rx.recv() else { continue };
                for (mut from, mut to) in
                    [(client.try_clone().expect("dup"), server.try_clone().expect("dup")), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        addr
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Two namespaces joined by a veth pair: `client` (addresses .2, .3, .66 of 192.0.2.0/24 and
/// 2001:db8::2, ::3) and `server` (192.0.2.1, 2001:db8::1) where crowd is attached to `server_if`.
pub struct Link {
    /// The sending side.
    pub client: Netns,
    /// The protected side.
    pub server: Netns,
    /// The protected interface, in `server`.
    pub server_if: String,
    /// The sending interface, in `client`.
    pub client_if: String,
}

/// The server's IPv4 address.
pub const SERVER_V4: &str = "192.0.2.1";
/// The server's IPv6 address.
pub const SERVER_V6: &str = "2001:db8::1";

impl Link {
    /// Builds the topology; `tag` keeps names unique across parallel tests.
    pub fn new(tag: &str) -> Link {
        let client = Netns::new(&format!("{tag}c"));
        let server = Netns::new(&format!("{tag}s"));
        let (cif, sif) = (format!("{tag}a"), format!("{tag}b"));
        ip(&["link", "add", &cif, "netns", &client.name, "type", "veth", "peer", "name", &sif, "netns", &server.name]);
        for a in ["192.0.2.2/24", "192.0.2.3/24", "192.0.2.66/24"] {
            client.ip(&["addr", "add", a, "dev", &cif]);
        }
        for a in ["2001:db8::2/64", "2001:db8::3/64"] {
            client.ip(&["addr", "add", a, "dev", &cif, "nodad"]);
        }
        server.ip(&["addr", "add", "192.0.2.1/24", "dev", &sif]);
        server.ip(&["addr", "add", "2001:db8::1/64", "dev", &sif, "nodad"]);
        client.ip(&["link", "set", &cif, "up"]);
        server.ip(&["link", "set", &sif, "up"]);
        let link = Link { client, server, server_if: sif, client_if: cif };
        // Wait until both families answer, so that later failures mean drops, not set-up.
        for src in ["192.0.2.3", "2001:db8::3"] {
            let ok = (0..50).any(|_| {
                link.ping(src) || {
                    std::thread::sleep(Duration::from_millis(100));
                    false
                }
            });
            assert!(ok, "topology not ready: {src} cannot reach the server");
        }
        link
    }

    /// One ICMP echo from `src` to the server (same family); true when answered.
    pub fn ping(&self, src: &str) -> bool {
        let dst = if src.contains(':') { SERVER_V6 } else { SERVER_V4 };
        self.client.run("ping", &["-c", "1", "-W", "1", "-I", src, dst]).status.success()
    }
}

/// UDP and TCP echo servers on the server's addresses, stopped on drop.
pub struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The port both listen on.
    pub port: u16,
}

impl Echo {
    /// Starts UDP and TCP echo servers in `ns` on every address, port `port`.
    pub fn start(ns: &Netns, port: u16) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for any in ["0.0.0.0", "[::]"] {
            let addr: SocketAddr = format!("{any}:{port}").parse().expect("addr");
            let s = stop.clone();
            threads.push(ns.spawn(move || {
                let sock = bind_udp(addr);
                sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
                let mut buf = [0u8; 2048];
                while !s.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }));
            let s = stop.clone();
            threads.push(ns.spawn(move || {
                let l = bind_tcp(addr);
                l.set_nonblocking(true).expect("nonblocking");
                while !s.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            c.set_nonblocking(false).expect("blocking");
                            let mut b = [0u8; 64];
                            if let Ok(n) = c.read(&mut b) {
                                let _ = c.write_all(&b[..n]);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
        Echo { stop, threads, port }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn bind_udp(addr: SocketAddr) -> UdpSocket {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    if addr.is_ipv6() {
        s.set_only_v6(true).expect("v6only");
    }
    s.bind(&SockAddr::from(addr)).expect("bind udp");
    s.into()
}

fn bind_tcp(addr: SocketAddr) -> TcpListener {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    if addr.is_ipv6() {
        s.set_only_v6(true).expect("v6only");
    }
    s.set_reuse_address(true).expect("reuse");
    s.bind(&SockAddr::from(addr)).expect("bind tcp");
    s.listen(16).expect("listen");
    s.into()
}

fn server_for(src: IpAddr, port: u16) -> SocketAddr {
    let dst: IpAddr = if src.is_ipv4() { SERVER_V4.parse().expect("v4") } else { SERVER_V6.parse().expect("v6") };
    SocketAddr::new(dst, port)
}

/// Sends one UDP datagram from `src` to the server's echo and waits up to `wait` for the echo.
/// Call inside the client namespace.
pub fn udp_probe(src: IpAddr, port: u16, wait: Duration) -> bool {
    let sock = bind_udp(SocketAddr::new(src, 0));
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let dst = server_for(src, port);
    sock.send_to(b"crowd-probe", dst).expect("send");
    let mut buf = [0u8; 64];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"crowd-probe")
}

/// Opens a TCP connection from `src` to the server's echo within `wait`; true when it echoes.
/// Call inside the client namespace.
pub fn tcp_probe(src: IpAddr, port: u16, wait: Duration) -> bool {
    let dst = server_for(src, port);
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    s.bind(&SockAddr::from(SocketAddr::new(src, 0))).expect("bind");
    if s.connect_timeout(&SockAddr::from(dst), wait).is_err() {
        return false;
    }
    let mut c: std::net::TcpStream = s.into();
    c.set_read_timeout(Some(wait)).expect("timeout");
    let mut b = [0u8; 8];
    c.write_all(b"crowd").is_ok() && matches!(c.read(&mut b), Ok(5))
}
