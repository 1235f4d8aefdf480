//! UDP I/O for the QUIC driver: segmentation offload where the kernel offers it.
//!
//! * **GSO on send** (`UDP_SEGMENT`): consecutive packets of one connection to the same address
//!   and of the same size (the last may be shorter) leave in one `sendmsg` of up to 64 segments.
//! * **GRO on receive** (`UDP_GRO`): the kernel may coalesce several datagrams from one sender
//!   into one buffer; the segment size arrives in a control message and the buffer is split.
//!
//! Both are probed per socket: if the kernel refuses the socket option or the first segmented
//! send, the socket falls back to one datagram per system call. Non-Linux systems always use
//! the plain path.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Most segments in one GSO send (the kernel's limit).
const MAX_SEGMENTS: usize = 64;
/// Largest UDP payload of one system call.
pub(crate) const MAX_BATCH_BYTES: usize = 65_507;

/// Per-socket offload state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offload {
    pub(crate) gso: bool,
    pub(crate) gro: bool,
}

impl Offload {
    /// Enables GRO on `socket` if possible; GSO is tried on first use.
    pub(crate) fn probe(socket: &UdpSocket) -> Offload {
        Offload {
            gso: cfg!(target_os = "linux"),
            gro: enable_gro(socket),
        }
    }
}

#[cfg(target_os = "linux")]
fn enable_gro(socket: &UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn enable_gro(_socket: &UdpSocket) -> bool {
    false
}

/// Sends everything quiche has queued for `q`, using GSO when `offload.gso`. `buf` must hold
/// at least [`MAX_BATCH_BYTES`]. Returns `Err` only for errors other than a full socket buffer
/// (which stops sending: what quiche produced is then lost and will be retransmitted).
pub(crate) fn flush(
    q: &mut quiche::Connection,
    socket: &UdpSocket,
    offload: &mut Offload,
    buf: &mut [u8],
) -> Result<(), quiche::Error> {
    let mss = q.max_send_udp_payload_size().max(1200);
    let mut len = 0; // bytes of the batch in `buf`
    let mut segments = 0;
    let mut segment = 0; // size of the batch's segments
    let mut dst: Option<SocketAddr> = None;
    loop {
        // Room for one more full packet in the batch?
        if segments == MAX_SEGMENTS || len + mss > buf.len().min(MAX_BATCH_BYTES) {
            if !send_batch(socket, offload, &buf[..len], segment, dst) {
                return Ok(());
            }
            len = 0;
            segments = 0;
        }
        let (n, info) = match q.send(&mut buf[len..len + mss]) {
            Ok(r) => r,
            Err(quiche::Error::Done) => {
                if segments > 0 {
                    send_batch(socket, offload, &buf[..len], segment, dst);
                }
                return Ok(());
            }
            Err(e) => {
                if segments > 0 {
                    send_batch(socket, offload, &buf[..len], segment, dst);
                }
                return Err(e);
            }
        };
        let joins = segments > 0 && dst == Some(info.to) && n <= segment && offload.gso;
        if segments > 0 && !joins {
            // Send the batch so far, then start a new one with this packet.
            let batch_len = len;
            if !send_batch(socket, offload, &buf[..batch_len], segment, dst) {
                return Ok(());
            }
            buf.copy_within(batch_len..batch_len + n, 0);
            len = 0;
            segments = 0;
        }
        if segments == 0 {
            segment = n;
            dst = Some(info.to);
        }
        len += n;
        segments += 1;
        if n < segment {
            // A short packet ends a GSO batch.
            if !send_batch(socket, offload, &buf[..len], segment, dst) {
                return Ok(());
            }
            len = 0;
            segments = 0;
        }
    }
}

/// Sends one batch; returns false if the socket buffer is full.
fn send_batch(
    socket: &UdpSocket,
    offload: &mut Offload,
    batch: &[u8],
    segment: usize,
    dst: Option<SocketAddr>,
) -> bool {
    let Some(dst) = dst else { return true };
    if batch.is_empty() {
        return true;
    }
    if batch.len() > segment && offload.gso {
        match send_gso(socket, batch, segment, dst) {
            Ok(()) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                log::info!("transport: UDP segmentation offload unavailable ({e}); sending packets one by one");
                offload.gso = false;
            }
        }
    }
    for packet in batch.chunks(segment.max(1)) {
        match socket.send_to(packet, dst) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                log::debug!("transport: send to {dst}: {e}");
                return true;
            }
        }
    }
    true
}

#[cfg(target_os = "linux")]
fn send_gso(socket: &UdpSocket, batch: &[u8], segment: usize, dst: SocketAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (addr, addr_len) = sockaddr(dst);
    let mut iov = libc::iovec {
        iov_base: batch.as_ptr() as *mut libc::c_void,
        iov_len: batch.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let mut control = [0u8; 64];
    debug_assert!(space <= control.len());
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &addr as *const libc::sockaddr_storage as *mut libc::c_void;
    msg.msg_namelen = addr_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` bytes, enough for one u16 control message.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment as u16);
    }
    // SAFETY: a valid descriptor and a fully initialised msghdr.
    let rc = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_gso(_: &UdpSocket, _: &[u8], _: usize, _: SocketAddr) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "no GSO"))
}

#[cfg(target_os = "linux")]
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large enough for either family.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe {
                std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin);
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe {
                std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6);
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

#[cfg(target_os = "linux")]
fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Receives one datagram (possibly several coalesced by GRO) into `buf`. Returns its length,
/// the sender, and the segment size (the whole length when not coalesced).
pub(crate) fn recv(
    socket: &UdpSocket,
    offload: &Offload,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, usize)> {
    #[cfg(target_os = "linux")]
    if offload.gro {
        return recv_gro(socket, buf);
    }
    let _ = offload;
    let (n, from) = socket.recv_from(buf)?;
    Ok((n, from, n))
}

#[cfg(target_os = "linux")]
fn recv_gro(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain data.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u8; 64];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut storage as *mut libc::sockaddr_storage as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.len() as _;
    // SAFETY: a valid descriptor and a fully initialised msghdr.
    let rc = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = rc as usize;
    let mut segment = n;
    // SAFETY: iterating the control messages the kernel wrote within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                if size > 0 {
                    segment = size as usize;
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let from = from_sockaddr(&storage)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))?;
    Ok((n, from, segment))
}

/// Drains `socket` until it would block, calling `f` for each datagram (splitting buffers the
/// kernel coalesced). Returns the first error other than `WouldBlock` / `Interrupted`.
pub(crate) fn recv_each(
    socket: &UdpSocket,
    offload: &Offload,
    buf: &mut [u8],
    mut f: impl FnMut(&mut [u8], SocketAddr),
) -> io::Result<()> {
    loop {
        match recv(socket, offload, buf) {
            Ok((n, from, segment)) => {
                let mut off = 0;
                while off < n {
                    let end = (off + segment.max(1)).min(n);
                    f(&mut buf[off..end], from);
                    off = end;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Asks the kernel for send and receive buffers of `bytes` each (best effort: a refusal is
/// logged at debug level, and the socket works with what it has).
#[cfg(target_os = "linux")]
pub(crate) fn set_buffer_sizes(socket: &std::net::UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            log::debug!(
                "setsockopt buffer size: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Asks the kernel for larger socket buffers (not done on this platform).
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_buffer_sizes(_socket: &std::net::UdpSocket, _bytes: usize) {}
