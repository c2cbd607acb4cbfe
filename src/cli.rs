//! Command-line arguments. Each subcommand's `--help` carries examples.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sockit_proto::hostport::HostPort;
use sockit_proto::tftp::options::Rollover;

use crate::limits;

/// Each client's port when `HOST[:PORT]` leaves it out: the port its
/// sockit server listens on by default (the well-known one where the
/// service has one a user may bind).
pub mod port {
    pub const FILES: u16 = 8080;
    pub const ECHO: u16 = 8007;
    /// The course's classic UDP time service.
    pub const TIME: u16 = 9000;
    pub const DAYTIME: u16 = 13;
    pub const RFC868: u16 = 37;
    pub const DOWNLOAD: u16 = 7890;
    pub const CHAT: u16 = 7070;
    /// RFC 1350's.
    pub const TFTP: u16 = 69;
}

#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    about = "Classic client/server socket programs, done as real tools",
    after_help = "One grammar for every command:
  clients name their server first, as HOST[:PORT] (file commands: or in -s HOST[:PORT] / SOCKIT_SERVER)
  servers take --listen ADDR (port 0: any free port) and first print `listening on PROTO ADDR (SERVICE, auth: ...)`
  uploads read LOCAL then REMOTE, downloads REMOTE then -o PATH; a trailing / means into a folder
  --json prints one event per line; exit codes: 0 ok, 1 failed, 2 usage, 130 interrupted

Start here:  sockit serve   then, in another terminal,  sockit put localhost FILE ; sockit ls localhost ; sockit get localhost FILE
More:        sockit COMMAND --help,  sockit man COMMAND,  sockit completions bash"
)]
pub struct Cli {
    /// Log lines on stderr, with timestamps: -v what happens (requests,
    /// transfers), -vv debug, -vvv trace. SOCKIT_LOG (an env-filter) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Also append log lines (timestamped, at least -v's) to FILE.
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Log lines as JSON objects, one per line (on stderr, and in
    /// --log-file), at least -v's: for a log collector. Fields as in
    /// docs/json.md.
    #[arg(long, global = true)]
    pub json_log: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve files (zero configuration: ./sockit-data on 127.0.0.1:8080, and
    /// the web page on 127.0.0.1:8081, with a generated key), or with
    /// --config any set of services at once.
    #[command(after_help = "Examples:
  sockit serve                                  # ./sockit-data on 127.0.0.1:8080, the page on :8081
  sockit serve --listen 0.0.0.0:8080 --web 0.0.0.0:8081 --qr   # for phones on the LAN
  sockit serve --read-only                      # share, take nothing
  sockit serve --upload-only                    # a drop box: upload, nothing listed
  sockit serve --listen 0.0.0.0:9000 --root /srv/drop --key-file ~/.sockit-key
  sockit serve --root s3://company-drop/files   # on S3 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY...)
  sockit serve --auth-digest md5                # the classic course programs' HMAC-MD5 clients
  sockit serve --listen 127.0.0.1:0 --insecure-no-auth   # the classic course programs' plain clients
  sockit serve --print-config > sockit.toml     # a starting point for --config
  sockit serve --config sockit.toml             # several services in one daemon")]
    Serve(ServeArgs),
    /// Upload a file (or a folder with -r).
    #[command(after_help = "Examples:
  sockit put files.lan report.pdf                 # stored as report.pdf
  sockit put files.lan report.pdf docs/2026.pdf   # stored under a sub-folder
  sockit put files.lan:9000 report.pdf docs/      # into a folder, on port 9000
  sockit put -r localhost photos                  # the whole folder
  sockit put --resume localhost big.iso           # continue an interrupted upload
  SOCKIT_SERVER=files.lan sockit put report.pdf   # the server named once, for a script
  sockit put --classic --insecure-no-auth 127.0.0.1 a.txt   # to a classic course server")]
    Put(PutArgs),
    /// Download a file (or a folder with -r), here or to -o PATH.
    #[command(after_help = "Examples:
  sockit get files.lan report.pdf
  sockit get files.lan docs/2026.pdf -o ~/Downloads
  sockit get -r localhost photos -o backup/
  sockit get --resume localhost big.iso")]
    Get(GetArgs),
    /// List a folder on the server.
    #[command(after_help = "Examples:
  sockit ls localhost
  sockit ls -r files.lan:9000 photos --json")]
    Ls(LsArgs),
    /// Show one file's or folder's size, type and time.
    #[command(
        override_usage = "sockit stat [OPTIONS] HOST[:PORT] PATH\n       sockit stat [OPTIONS] -s HOST[:PORT] PATH"
    )]
    Stat(PathArgs),
    /// Remove a file, an empty folder, or a folder tree with -r.
    Rm(RmArgs),
    /// Create a folder (and its parents).
    #[command(
        override_usage = "sockit mkdir [OPTIONS] HOST[:PORT] PATH\n       sockit mkdir [OPTIONS] -s HOST[:PORT] PATH"
    )]
    Mkdir(PathArgs),
    /// Run a command on a server started with --allow-exec.
    #[command(after_help = "Examples:
  sockit exec localhost uname -a
  sockit exec 10.0.0.5 sh -c 'df -h | head -3'
  sort < names.txt | sockit exec 10.0.0.5 uniq -c     # stdin goes to the command

stdout and stderr are printed separately; the exit code is the command's.
stdin is sent (up to 16 MiB) unless it is a terminal or -n is given.")]
    Exec(ExecArgs),
    /// Echo (RFC 862) server and client, with the classic upper-case variant.
    #[command(after_help = "Examples:
  sockit echo serve --listen 127.0.0.1:7007                # TCP and UDP, no key (RFC 862)
  sockit echo serve --tcp 127.0.0.1:9999 --upper --auth-digest md5 --key-file classic.key
  sockit echo localhost:7007 hello world
  sockit echo 127.0.0.1:7007 --udp 'hello 你好'")]
    Echo(EchoArgs),
    /// Time services (the classic UDP strftime service, RFC 867, RFC 868) and client.
    #[command(after_help = "Examples:
  sockit time serve --udp 127.0.0.1:9000 --daytime 127.0.0.1:1313 --rfc868 127.0.0.1:3737
  sockit time 127.0.0.1:9000                # the server's default: %Y-%m-%d %X
  sockit time 127.0.0.1:9000 '%Y'
  sockit time 127.0.0.1:3737 --rfc868")]
    Time(TimeArgs),
    /// Load generators: echo request/response load, idle connection holding.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// One-shot download (send a name, receive the bytes) server and client.
    #[command(after_help = "Examples:
  sockit download serve --listen 127.0.0.1:7890 --root ./public --insecure-no-auth
  sockit download 127.0.0.1:7890 report.pdf -o saved.pdf --insecure-no-auth")]
    Download(DownloadArgs),
    /// The network debugging assistant: netcat's habits with NetAssist's
    /// display (hex, encodings, timestamps, checksums, message framing).
    #[command(after_help = "Examples:
  sockit nc example.org 80                      # TCP client; stdin EOF half-closes
  sockit nc -l 9000                             # wait for one client on port 9000
  sockit nc -lk 127.0.0.1 9000 --broadcast-to-all   # a room of clients, lines tagged by client
  sockit nc -u 192.168.1.20 8080 --encoding gbk # UDP peer speaking GBK, like NetAssist
  sockit nc -ul -k 127.0.0.1 7788 --timestamps  # many UDP peers on one socket, timestamped
  sockit nc 127.0.0.1 502 --send-hex --hex      # type `01 03 00 00 00 01`, see replies as hex
  sockit nc 127.0.0.1 502 --send-hex --append crc16-modbus
  sockit nc 127.0.0.1 9000 --data 'PING {{seq}}' --interval 1000 --count 5
  sockit nc 127.0.0.1 8080 --frame json-frame   # decode sockit's framed protocol
  sockit nc -lk 127.0.0.1 9000 --rules rules.toml   # a peer that answers by rule
  sockit nc 127.0.0.1 7007 --script echo.toml   # send / expect; exit 1 at the first miss
  sockit nc 127.0.0.1 502 --send read-reg       # a quick send from ~/.config/sockit/assistant.toml
  sockit nc -z 127.0.0.1 20-25 --json           # port check: open / closed / filtered")]
    Nc(NcArgs),
    /// Subnet calculator: class A-E, address kind, mask, network, broadcast,
    /// host range and count, binary view; subnet splits; IPv6 prefixes.
    #[command(after_help = "Examples:
  sockit ipcalc 192.168.1.10/24
  sockit ipcalc 172.16.5.4 255.255.240.0
  sockit ipcalc 10.0.0.0/8 --split 10
  sockit ipcalc 192.168.0.0/16 --contains 192.168.7.9
  sockit ipcalc 2001:db8::1/64 --json")]
    Ipcalc(IpcalcArgs),
    /// Look a name up through the system resolver: every IPv4 and IPv6 address.
    #[command(after_help = "Examples:
  sockit resolve localhost
  sockit resolve example.org -4 --json")]
    Resolve(ResolveArgs),
    /// A chat room: a TCP server that forwards every line to every member
    /// (any line client works, nc included), and a client to join it.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Two-way UDP chat with one peer: send what you type, show what
    /// arrives (from anyone) with its sender and the time.
    #[command(after_help = "Examples:
  sockit udpchat --listen 0.0.0.0:7788 --peer 192.168.1.20:7788
  sockit udpchat --listen 127.0.0.1:7788 --peer 127.0.0.1:7789 --encoding gbk   # to NetAssist or the course's GBK chat")]
    Udpchat(UdpChatArgs),
    /// IP Messenger / FeiQ compatible LAN messenger: see who is on the LAN,
    /// send acknowledged messages and files.
    #[command(after_help = "Examples:
  sockit ipmsg                                          # interactive: /list, /msg, /file, /get, /help
  sockit ipmsg listen --json                            # one event per line: entry, exit, message, ...
  sockit ipmsg send 192.168.1.20 'hello'                # exit 0 once acknowledged (RECVMSG)
  sockit ipmsg send 192.168.1.20 --file report.pdf 'here it is'
  sockit ipmsg --bind 127.0.0.1:2426 --peer 127.0.0.2   # loopback only: announce to 127.255.255.255 and 127.0.0.2

Port 2425 (UDP for messages, TCP for files) unless an address says otherwise.
Text goes out as UTF-8 to peers that advertise it and as GBK to the rest (FeiQ);
--encoding forces one.")]
    Ipmsg(IpmsgArgs),
    /// UDP broadcast: send to every interface's broadcast address, or listen.
    #[command(subcommand)]
    Broadcast(BroadcastCommand),
    /// TFTP server and client: RFC 1350 with blksize, timeout, tsize and
    /// windowsize options, netascii, and uploads kept only when complete.
    #[command(subcommand)]
    Tftp(TftpCommand),
    /// The teaching lab: the course's echo server in every concurrency
    /// model, to run side by side and measure.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Read a capture (pcap or pcapng, from tcpdump or Wireshark) back as a
    /// ladder: each TCP and UDP conversation's handshake, data and close,
    /// and what each packet means to the protocols sockit speaks.
    #[command(after_help = "Examples:
  sockit lab capture -o session.pcap -- sockit put big.iso 127.0.0.1
  sockit explain session.pcap
  sockit explain session.pcap --json | jq 'select(.event == \"packet\")'
  sockit explain device.pcap --decode 6969=tftp

Recognised by content: the framed protocol (with or without auth), TFTP
requests and the transfers that follow on new ports, IPMSG packets, echo.
By port: 7 and 8007 echo, 13 text (daytime), 37 time, 69 TFTP, 2425 IPMSG;
--decode adds more.")]
    Explain(ExplainArgs),
    /// Print a shell completion script.
    #[command(after_help = "Install:
  bash:        sockit completions bash > ~/.local/share/bash-completion/completions/sockit
  zsh:         sockit completions zsh > \"${fpath[1]}/_sockit\"
  fish:        sockit completions fish > ~/.config/fish/completions/sockit.fish
  powershell:  sockit completions powershell >> $PROFILE
  (or, for this shell only:  source <(sockit completions bash))")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of sockit or of one subcommand, or
    /// write every page into a folder.
    #[command(after_help = "Examples:
  sockit man | man -l -                 # read it now
  sockit man tftp get | man -l -        # one subcommand's page
  sudo sockit man --out-dir /usr/local/share/man/man1   # install every page")]
    Man(ManArgs),
    /// Print the web page's address with its login token (the same on every
    /// start with the same key).
    #[command(
        name = "web-url",
        after_help = "Examples:
  sockit web-url                          # for serve's default web address
  sockit web-url --web 10.0.0.5:8081 --qr # for a phone on the LAN"
    )]
    WebUrl(WebUrlArgs),
}

#[derive(Debug, Args)]
pub struct WebUrlArgs {
    /// The web listener's address, as given to `serve --web`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub web: SocketAddr,
    /// The key the server uses [default: the default key].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The server runs TLS (`serve --tls`): an https address.
    #[arg(long)]
    pub tls: bool,
    /// Also print the address as a QR code, for a phone's camera.
    #[arg(long)]
    pub qr: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`tftp get`); none: sockit's own.
    #[arg(value_name = "SUBCOMMAND")]
    pub path: Vec<String>,
    /// Write every page (sockit.1, sockit-put.1, sockit-tftp-get.1, ...)
    /// into this folder instead.
    #[arg(long, value_name = "DIR", conflicts_with = "path")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Run a chat room.
    #[command(after_help = "Examples:
  sockit chat serve --listen 127.0.0.1:7070                      # members use the default key
  sockit chat serve --listen 0.0.0.0:7070 --insecure-no-auth     # nc/ncat can join: nc HOST 7070
  sockit chat serve --listen 0.0.0.0:7070 --bus nats://10.0.0.9:4222   # one room across servers

In the room: /nick NAME, /who, /msg NICK TEXT, /me ACTION, /quit, /help.")]
    Serve(ChatServeArgs),
    /// Join a chat room: type lines, see everyone's.
    #[command(after_help = "Examples:
  sockit chat join 127.0.0.1:7070 --nick alice
  sockit chat join 10.0.0.5:7070 --nick 小明 --encoding gbk --insecure-no-auth")]
    Join(ChatJoinArgs),
}

#[derive(Debug, Args)]
pub struct ChatServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub run_as: RunAsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    /// Most members at once.
    #[arg(long, default_value_t = 4096, value_parser = limits::parser::<usize>(&limits::MAX_CONNECTIONS))]
    pub max_connections: usize,
    /// Most members from one address at once, so one host cannot take
    /// every place (raise it for a class behind one NAT address).
    #[arg(long, value_name = "N", default_value_t = sockit::server::DEFAULT_MAX_PER_PEER, value_parser = limits::parser::<usize>(&limits::MAX_PER_PEER))]
    pub max_per_peer: usize,
    /// Listen backlog.
    #[arg(long, default_value_t = sockit::server::DEFAULT_BACKLOG, value_parser = limits::parser::<u32>(&limits::BACKLOG))]
    pub backlog: u32,
    /// Seconds a member may send nothing before it is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = limits::parser::<u64>(&limits::IDLE_TIMEOUT))]
    pub idle_timeout: u64,
    /// Bytes waiting for a member before it counts as fallen behind and is
    /// disconnected.
    #[arg(long, value_name = "BYTES", default_value_t = sockit::chat::DEFAULT_MEMBER_BACKLOG, value_parser = limits::parser::<usize>(&limits::MEMBER_BACKLOG))]
    pub member_backlog: usize,
    /// Share the room with every server on this NATS bus (JetStream on:
    /// `nats-server -js`), e.g. nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,
    /// The room's name on the bus.
    #[arg(long, value_name = "NAME", requires = "bus")]
    pub room: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChatJoinArgs {
    /// The room: HOST or HOST:PORT (port 7070 when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub addr: HostPort,
    /// The nick to take (the room names you guestN otherwise).
    #[arg(long)]
    pub nick: Option<String>,
    /// Your terminal's encoding; the room speaks UTF-8.
    #[arg(long, default_value = "utf-8", value_parser = parse_encoding)]
    pub encoding: sockit_proto::assist::text::TextEncoding,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Seconds to wait for the room to answer.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct UdpChatArgs {
    /// Address to receive on; port 0 picks one (printed on stderr).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where typed lines go.
    #[arg(long)]
    pub peer: SocketAddr,
    /// Text encoding on the wire: utf-8, gbk, gb2312, gb18030, shift_jis.
    #[arg(long, default_value = "utf-8", value_parser = parse_encoding)]
    pub encoding: sockit_proto::assist::text::TextEncoding,
    /// One JSON object per message instead of text lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IpmsgArgs {
    #[command(subcommand)]
    pub command: Option<IpmsgCommand>,
    #[command(flatten)]
    pub node: IpmsgNodeArgs,
}

#[derive(Debug, Args)]
pub struct IpmsgNodeArgs {
    /// Address (UDP and TCP) to use; port 2425 unless given. A loopback
    /// address keeps every announcement on loopback.
    #[arg(long, visible_alias = "listen", global = true, default_value = "0.0.0.0:2425", value_parser = parse_ipmsg_addr)]
    pub bind: SocketAddr,
    /// Hosts to announce to directly, besides the broadcast addresses (repeatable).
    #[arg(long, global = true, value_parser = parse_ipmsg_addr)]
    pub peer: Vec<SocketAddr>,
    /// Login name in every packet (default: $USER).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Host name in every packet (default: this host's name).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Name shown in peers' lists (default: the user name).
    #[arg(long, global = true)]
    pub nick: Option<String>,
    /// Group name shown in peers' lists.
    #[arg(long, global = true, default_value = "")]
    pub group: String,
    /// auto (UTF-8 to peers that advertise it, GBK to others), or always
    /// utf-8, gbk or gb18030.
    #[arg(long, global = true, default_value = "auto", value_parser = parse_ipmsg_encoding)]
    pub encoding: IpmsgEncoding,
    /// Do not announce to broadcast addresses, only to --peer hosts.
    #[arg(long, global = true)]
    pub no_broadcast: bool,
    /// Wait this long for RECVMSG before sending again.
    #[arg(long, global = true, default_value = "1000")]
    pub retry_ms: u64,
    /// Sends of one message before it is reported undelivered.
    #[arg(long, global = true, default_value_t = sockit_proto::ipmsg::node::DEFAULT_MAX_ATTEMPTS)]
    pub attempts: u32,
    /// Folder received files are saved in.
    #[arg(long, global = true, default_value = ".")]
    pub inbox: std::path::PathBuf,
    /// Largest file accepted, in bytes; larger offers are refused unfetched.
    #[arg(long, global = true, default_value_t = 4 << 30)]
    pub max_file: u64,
}

#[derive(Debug, Subcommand)]
pub enum IpmsgCommand {
    /// Report what happens on the LAN: entries, exits, messages.
    Listen {
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
        /// Download every offered file into --inbox.
        #[arg(long)]
        accept_files: bool,
    },
    /// Send one message; exit 0 once the peer acknowledges it, 1 if it never does.
    #[command(
        override_usage = "sockit ipmsg send [OPTIONS] <HOST[:PORT]> <TEXT>\n       sockit ipmsg send [OPTIONS] --to <HOST[:PORT]> <TEXT>"
    )]
    Send {
        /// The peer (port 2425 unless given), as the first argument or --to.
        #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_ipmsg_addr)]
        to: Option<SocketAddr>,
        /// Attach a file (repeatable); the command then waits for the peer to fetch it.
        #[arg(long)]
        file: Vec<std::path::PathBuf>,
        /// With --file: how long to wait for the peer to fetch the files.
        #[arg(long, default_value = "300")]
        serve_secs: u64,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
        /// [HOST[:PORT]] TEXT: the peer (unless --to names it), then the message.
        #[arg(value_name = "TEXT", num_args = 1..=2, required = true)]
        words: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BroadcastCommand {
    /// Send TEXT to the broadcast address of each interface --bind covers.
    #[command(after_help = "Examples:
  sockit broadcast send hello                        # every interface's broadcast address, port 7788
  sockit broadcast send --bind 192.168.4.75 --port 9000 'on this LAN only'
  sockit broadcast send --bind 127.0.0.1 test         # loopback only (127.255.255.255)")]
    Send {
        /// The text to send.
        text: String,
        /// UDP port to send to.
        #[arg(long, default_value_t = 7788)]
        port: u16,
        /// Local address to send from: 0.0.0.0 means every interface.
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::Ipv4Addr,
        /// Text encoding: utf-8, gbk, gb2312, gb18030, shift_jis.
        #[arg(long, default_value = "utf-8", value_parser = parse_encoding)]
        encoding: sockit_proto::assist::text::TextEncoding,
    },
    /// Print every datagram that arrives on the port.
    #[command(after_help = "Examples:
  sockit broadcast listen
  sockit broadcast listen --port 9000 --json")]
    Listen {
        /// UDP port to listen on.
        #[arg(long, default_value_t = 7788)]
        port: u16,
        /// Local address to listen on: 0.0.0.0 means every interface.
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::Ipv4Addr,
        /// IP:PORT to listen on, as the servers take it (instead of --bind
        /// and --port).
        #[arg(long, value_name = "ADDR", conflicts_with_all = ["port", "bind"])]
        listen: Option<std::net::SocketAddrV4>,
        /// Text encoding: utf-8, gbk, gb2312, gb18030, shift_jis.
        #[arg(long, default_value = "utf-8", value_parser = parse_encoding)]
        encoding: sockit_proto::assist::text::TextEncoding,
        /// One JSON object per datagram.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TftpCommand {
    /// Serve a folder over TFTP (read-only unless --allow-write).
    #[command(after_help = "Examples:
  sockit tftp serve --root ./firmware                       # 127.0.0.1:69, read-only
  sudo sockit tftp serve --listen 0.0.0.0:69 --root /srv/tftp   # devices on the LAN boot from it
  sockit tftp serve --listen 127.0.0.1:0 --root . --allow-write --allow-create")]
    Serve(TftpServeArgs),
    /// Download: tftp get HOST[:PORT] REMOTE [LOCAL].
    #[command(
        override_usage = "sockit tftp get [OPTIONS] <HOST[:PORT]> <REMOTE> [LOCAL]",
        after_help = "Examples:
  sockit tftp get 192.168.1.1 config.bin
  sockit tftp get 127.0.0.1:6969 images/boot.img boot.img --blksize 1468 --windowsize 16
  sockit tftp get 10.0.0.5 motd.txt --mode netascii
  sockit tftp get 10.0.0.5 big.iso --no-options          # plain RFC 1350"
    )]
    Get(TftpGetArgs),
    /// Upload: tftp put HOST[:PORT] LOCAL [REMOTE], the order of tftp-hpa's put.
    #[command(
        override_usage = "sockit tftp put [OPTIONS] <HOST[:PORT]> <LOCAL> [REMOTE]",
        after_help = "Examples:
  sockit tftp put 192.168.1.1 new-firmware.bin
  sockit tftp put 127.0.0.1:6969 ./today.log uploads/log.txt --blksize 1468
  sockit tftp put 127.0.0.1:6969 report.txt incoming/   # into a folder: incoming/report.txt"
    )]
    Put(TftpPutArgs),
}

#[derive(Debug, Args)]
pub struct TftpServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:69")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub run_as: RunAsArgs,
    /// Folder to serve; created if missing.
    #[arg(long, default_value = "sockit-data")]
    pub root: PathBuf,
    /// Accept uploads (they replace existing files only, unless --allow-create).
    #[arg(long)]
    pub allow_write: bool,
    /// Uploads may create new files.
    #[arg(long, requires = "allow_write")]
    pub allow_create: bool,
    /// Largest block size granted (8-65464).
    #[arg(long, value_name = "N", default_value_t = sockit_proto::tftp::options::MAX_BLKSIZE,
          value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    #[arg(long, value_name = "N", default_value_t = sockit::tftp::server::DEFAULT_MAX_WINDOWSIZE,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_windowsize: u16,
    /// Most transfers at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = sockit::tftp::server::DEFAULT_MAX_TRANSFERS, value_parser = limits::parser::<usize>(&limits::MAX_TRANSFERS))]
    pub max_transfers: usize,
    /// Most transfers from one address at once, so one host cannot take
    /// every slot.
    #[arg(long, value_name = "N", default_value_t = sockit::tftp::server::DEFAULT_MAX_PER_PEER, value_parser = limits::parser::<usize>(&limits::MAX_PER_PEER))]
    pub max_per_peer: usize,
    /// Largest upload accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_upload: Option<u64>,
    /// Seconds before a block is sent again (unless the client negotiates one).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub timeout: f64,
    /// Retransmissions before a transfer is given up.
    #[arg(long, value_name = "N", default_value_t = sockit_proto::tftp::transfer::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
    /// Answer every transfer from the listening port rather than a new
    /// port each (for NAT, firewalls and containers).
    #[arg(long)]
    pub single_port: bool,
    /// The block number after 65535: 0, as tftpd-hpa, or 1, as some boot
    /// ROMs expect. A client's `rollover` option overrides it.
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = parse_rollover)]
    pub rollover: Rollover,
    /// Grant a client a block larger than the route's MTU allows when it
    /// asks for one; its datagrams are then fragmented, which some boot
    /// ROMs drop. Without this the MTU caps the block.
    #[arg(long)]
    pub allow_fragments: bool,
    /// Rewrite or refuse requested names with tftpd-hpa's remap rules
    /// (its `-m` file, unchanged; see docs/tftp.md).
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TftpGetArgs {
    /// The server: HOST or HOST:PORT (port 69 when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub server: HostPort,
    /// The file's name on the server.
    pub remote: String,
    /// Where it goes: a folder (existing, or ending in `/`) to save into,
    /// or the local file's name [default: REMOTE's file name, here].
    pub local: Option<PathBuf>,
    /// The same as LOCAL.
    #[arg(short, long, value_name = "PATH", conflicts_with = "local")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub options: TftpClientArgs,
}

#[derive(Debug, Args)]
pub struct TftpPutArgs {
    /// The server: HOST or HOST:PORT (port 69 when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub server: HostPort,
    /// The local file.
    pub local: PathBuf,
    /// The name on the server; ending in `/`, a folder to upload into
    /// [default: LOCAL's file name].
    pub remote: Option<String>,
    #[command(flatten)]
    pub options: TftpClientArgs,
}

/// The transfer settings tftp get and put share.
#[derive(Debug, Args)]
pub struct TftpClientArgs {
    /// Block size to ask for (8-65464); 1468 fills an Ethernet frame.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub blksize: Option<u16>,
    /// Blocks per acknowledgement (RFC 7440).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: Option<u16>,
    /// Retransmission timeout in seconds (1-255), also asked of the server.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u8).range(1..))]
    pub timeout: Option<u8>,
    /// Transfer mode.
    #[arg(long, value_enum, default_value_t = TftpMode::Octet)]
    pub mode: TftpMode,
    /// Ask the server what follows block 65535: 0 or 1 (the `rollover`
    /// option; a server that ignores it wraps to 0).
    #[arg(long, value_name = "0|1", value_parser = parse_rollover)]
    pub rollover: Option<Rollover>,
    /// Ask for no options at all (plain RFC 1350, as tftp-hpa sends).
    #[arg(long, conflicts_with_all = ["blksize", "windowsize", "timeout", "rollover"])]
    pub no_options: bool,
    /// Retransmissions before giving up.
    #[arg(long, value_name = "N", default_value_t = sockit_proto::tftp::transfer::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
    /// With get: after the last block, wait one timeout to repeat the last
    /// ACK if the server did not hear it (RFC 1350 §6); off by default, as
    /// in tftp-hpa. An upload always waits for the server's last ACK.
    #[arg(long)]
    pub dally: bool,
    /// One JSON object per line (progress and the summary).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TftpMode {
    Octet,
    Netascii,
}

#[derive(Debug, Args)]
pub struct NcArgs {
    /// HOST PORT (or HOST:PORT) to connect to; with -l, [ADDR] PORT to
    /// listen on; with -z, HOST PORTS... where each is 80, 20-25 or 22,80,443.
    #[arg(value_name = "HOST PORT")]
    pub target: Vec<String>,
    /// Listen instead of connecting.
    #[arg(short = 'l', long)]
    pub listen: bool,
    /// With -l the port to listen on; otherwise the local port to send from.
    #[arg(short = 'p', value_name = "PORT")]
    pub port: Option<u16>,
    /// UDP instead of TCP.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Keep listening: many TCP clients at once, or many UDP peers.
    #[arg(short = 'k', long)]
    pub keep_open: bool,
    /// Numeric addresses only: no name lookups.
    #[arg(short = 'n')]
    pub numeric: bool,
    /// Seconds allowed to connect, and of silence before giving up.
    #[arg(short = 'w', value_name = "SECS")]
    pub wait: Option<f64>,
    /// Quit this many seconds after stdin ends, even if the peer has not closed.
    #[arg(short = 'q', value_name = "SECS")]
    pub quit_after_eof: Option<f64>,
    /// Port check: report open / closed / filtered without sending data.
    #[arg(short = 'z')]
    pub zero_io: bool,
    /// With -z, report only the open ports.
    #[arg(long, requires = "zero_io")]
    pub open_only: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Local address to send from (client) or listen on (-l).
    #[arg(short = 's', value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Keep the write side open when stdin ends (no half-close).
    #[arg(long)]
    pub no_shutdown: bool,
    /// Half-close when stdin ends, as netcat-openbsd's -N: what sockit
    /// does anyway (accepted so the course's commands run as typed).
    #[arg(short = 'N', conflicts_with = "no_shutdown")]
    pub shutdown_on_eof: bool,
    /// TLS, as ncat's --ssl: connecting, nothing about the server is
    /// checked unless --ssl-trustfile; listening, the certificate is
    /// --ssl-cert, or the one `serve --tls` generates.
    #[arg(long, conflicts_with = "udp")]
    pub ssl: bool,
    /// Listening with --ssl: the certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ssl", "ssl_key"])]
    pub ssl_cert: Option<PathBuf>,
    /// Listening with --ssl: the certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ssl", "ssl_cert"])]
    pub ssl_key: Option<PathBuf>,
    /// Connecting with --ssl: verify the server against these CAs (PEM).
    #[arg(long, value_name = "FILE", requires = "ssl")]
    pub ssl_trustfile: Option<PathBuf>,
    /// Show what arrives as a hexdump (offsets, `<` / `>` direction).
    #[arg(long)]
    pub hex: bool,
    /// Read typed lines as hex bytes: `01 02 ff`, `0x01,0x02`, `0102ff`.
    #[arg(long)]
    pub send_hex: bool,
    /// Text encoding for both directions: utf-8, gbk, gb2312, gb18030, shift_jis.
    #[arg(long, default_value = "utf-8", value_parser = parse_encoding)]
    pub encoding: sockit_proto::assist::text::TextEncoding,
    /// Log mode: one line per message, with a millisecond timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Send --data / --data-file / --send every MS milliseconds instead of
    /// reading stdin.
    #[arg(long, value_name = "MS", requires = "payload")]
    pub interval: Option<u64>,
    /// How many times to send the payload [default: 1, or forever with --interval].
    #[arg(long, value_name = "N", requires = "payload")]
    pub count: Option<u64>,
    /// Send this text (encoded, with --append) instead of reading stdin.
    /// Macros are expanded on every send: {{seq}}, {{time:%H:%M:%S}},
    /// {{unix}}, {{rand:N}}, {{hex:0D0A}}.
    #[arg(long, value_name = "TEXT", group = "payload")]
    pub data: Option<String>,
    /// Send this file's bytes instead of reading stdin.
    #[arg(long, value_name = "FILE", group = "payload")]
    pub data_file: Option<PathBuf>,
    /// Append to each send, in order: crlf, lf, cr, sum8, xor8, lrc,
    /// crc16-modbus (low byte first), crc16-ccitt (CCITT-FALSE, high byte
    /// first), crc32 (IEEE, low byte first).
    #[arg(long, value_name = "WHAT", value_parser = parse_append)]
    pub append: Vec<sockit_proto::assist::append::Append>,
    /// Unix-domain stream socket: the one argument is its PATH (connect,
    /// or with -l create and listen; the file is removed on exit).
    #[arg(short = 'U', long = "unixsock", conflicts_with_all = ["udp", "ssl", "zero_io", "join", "hex", "timestamps", "frame", "json"])]
    pub unix: bool,
    /// With -u -l, join this multicast group (repeatable) and receive what
    /// is sent to it, as NetAssist's multicast mode.
    #[arg(long, value_name = "GROUP", requires_all = ["udp", "listen"])]
    pub join: Vec<IpAddr>,
    /// Run PROG (split on spaces, no shell) with the connection as its
    /// stdin and stdout, as ncat -e; with -lk, one process per client. A
    /// listener on a non-loopback address also needs --allow-exec.
    #[arg(short = 'e', long = "exec", value_name = "PROG", conflicts_with_all = ["udp", "ssl", "zero_io", "payload", "sh_exec"])]
    pub exec: Option<String>,
    /// As -e, with a line for `sh -c`.
    #[arg(short = 'c', long = "sh-exec", value_name = "LINE", conflicts_with_all = ["udp", "ssl", "zero_io", "payload"])]
    pub sh_exec: Option<String>,
    /// Let -e/-c serve other hosts: without it they listen on loopback only.
    #[arg(long)]
    pub allow_exec: bool,
    /// Send line endings as CRLF, as ncat -C (the same as a last
    /// `--append crlf`).
    #[arg(short = 'C', long = "crlf")]
    pub crlf: bool,
    /// Split what arrives into messages: line, len32le, json-frame, raw.
    #[arg(long, value_name = "MODE", value_parser = parse_frame)]
    pub frame: Option<sockit_proto::assist::messages::FrameMode>,
    /// Live RX/TX byte and message counters on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Write a timestamped copy of the session (both directions) to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// With -lk, send typed input to every client (default: the newest).
    #[arg(long)]
    pub broadcast_to_all: bool,
    /// With -lk, the most clients at once; more are turned away.
    #[arg(long, default_value_t = sockit::nc::DEFAULT_MAX_CLIENTS)]
    pub max_clients: usize,
    /// Raw output even with -k on a terminal: bytes as they arrive, with no
    /// client tags (the default when stdout is not a terminal).
    #[arg(long, conflicts_with_all = ["hex", "timestamps", "frame", "json", "tags"])]
    pub raw: bool,
    /// Log lines tagged with the client (`#2 127.0.0.1:50312 < ...`) and
    /// its comings and goings, even when stdout is not a terminal.
    #[arg(long)]
    pub tags: bool,
    /// One JSON object per line: port reports with -z, the step report
    /// with --script, session events otherwise.
    #[arg(long)]
    pub json: bool,
    /// Answer what arrives by the rules in FILE (TOML: match, reply
    /// template, delay, once, close), each message as --frame cuts it
    /// (default: the file's `frame`, else line). The write side stays open
    /// for replies after stdin ends.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["zero_io", "exec", "sh_exec", "unix", "script"])]
    pub rules: Option<PathBuf>,
    /// Run the scenario in FILE (send, expect, delay, close steps) over the
    /// connection; exit 0 when every expectation held, 1 at the first that
    /// did not, with what arrived instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["zero_io", "exec", "sh_exec", "unix", "udp", "payload", "keep_open"])]
    pub script: Option<PathBuf>,
    /// Quick sends (named messages) from FILE instead of
    /// ~/.config/sockit/assistant.toml; typed `/send NAME` sends one.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Send the profile's quick send NAME instead of reading stdin.
    #[arg(long = "send", value_name = "NAME", group = "payload")]
    pub send_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct IpcalcArgs {
    /// ADDR, ADDR/PREFIX or ADDR/MASK (IPv4 or IPv6).
    pub address: String,
    /// A netmask given separately, as in `ipcalc 10.0.0.1 255.0.0.0`.
    pub mask: Option<String>,
    /// List the subnets of this prefix length the network splits into.
    #[arg(long, value_name = "PREFIX")]
    pub split: Option<u32>,
    /// Say whether this address is inside the network (exit 1 if not).
    #[arg(long, value_name = "ADDR")]
    pub contains: Option<std::net::IpAddr>,
    /// Leave out the binary view.
    #[arg(long)]
    pub no_binary: bool,
    /// One JSON object instead of text (with --split, the subnets in it).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The host name to look up.
    pub name: String,
    /// IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A `--listen` address: `tcp://ADDR`, `udp://ADDR`, or a bare ADDR for
/// every protocol the service speaks.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub proto: Option<Proto>,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    let (proto, rest) = match s.split_once("://") {
        Some(("tcp", rest)) => (Some(Proto::Tcp), rest),
        Some(("udp", rest)) => (Some(Proto::Udp), rest),
        Some((other, _)) => return Err(format!("'{other}://' is not tcp:// or udp://")),
        None => (None, s),
    };
    let addr = rest
        .parse()
        .map_err(|_| format!("'{rest}' is not an address to listen on (IP:PORT, [IPV6]:PORT)"))?;
    Ok(Listen { proto, addr })
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT`: each client fills in its service's port.
fn parse_rollover(s: &str) -> Result<Rollover, String> {
    Rollover::parse(s).ok_or_else(|| format!("{s}: expected 0 or 1"))
}

fn parse_host_port(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s).map_err(|e| e.to_string())
}

/// An address with the port optional (IPMSG's 2425).
pub fn parse_ipmsg_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, sockit_proto::ipmsg::DEFAULT_PORT))
        .map_err(|_| format!("'{s}' is not an address (IP or IP:PORT)"))
}

/// `auto` (None: chosen per peer) or one encoding for every peer.
#[derive(Debug, Clone, Copy)]
pub struct IpmsgEncoding(pub Option<sockit_proto::assist::text::TextEncoding>);

fn parse_ipmsg_encoding(s: &str) -> Result<IpmsgEncoding, String> {
    if s == "auto" {
        return Ok(IpmsgEncoding(None));
    }
    parse_encoding(s).map(|e| IpmsgEncoding(Some(e)))
}

fn parse_encoding(s: &str) -> Result<sockit_proto::assist::text::TextEncoding, String> {
    s.parse()
        .map_err(|e: sockit_proto::assist::text::TextError| e.to_string())
}

fn parse_append(s: &str) -> Result<sockit_proto::assist::append::Append, String> {
    s.parse()
        .map_err(|e: sockit_proto::assist::append::UnknownAppend| e.to_string())
}

fn parse_frame(s: &str) -> Result<sockit_proto::assist::messages::FrameMode, String> {
    s.parse()
        .map_err(|e: sockit_proto::assist::messages::SplitError| e.to_string())
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum DigestArg {
    /// HMAC-SHA256 (32-byte answer).
    #[default]
    Sha256,
    /// HMAC-MD5 (16-byte answer), as the classic course programs send.
    Md5,
}

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// File holding the shared secret as text [default: the per-user key,
    /// created by `sockit serve` on first start].
    #[arg(
        long,
        env = "SOCKIT_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "insecure_no_auth"
    )]
    pub key_file: Option<PathBuf>,
    /// Turn authentication off: anyone who can connect may use the service.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The HMAC the client answers the challenge with.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha256)]
    pub auth_digest: DigestArg,
}

/// TLS on a server.
#[derive(Debug, Args)]
pub struct ServerTlsArgs {
    /// Encrypt every TCP connection with TLS. With a key, client and server
    /// each prove it inside TLS, bound to the channel, so a man in the
    /// middle fails without any certificate pinning. (`--tls-self-signed`
    /// says the same: without --tls-cert the certificate is generated.)
    #[arg(long, visible_alias = "tls-self-signed")]
    pub tls: bool,
    /// Certificate chain (PEM) [default: a self-signed one, generated on
    /// first start and kept beside the key].
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

/// TLS on a client.
#[derive(Debug, Args)]
pub struct ClientTlsArgs {
    /// Connect with TLS. With a key the server proves it holds the key;
    /// without one, its certificate is pinned on first use (known_servers
    /// beside the key) and a changed one refused.
    #[arg(long)]
    pub tls: bool,
    /// Verify the server's certificate against this CA bundle (PEM) instead.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run the services a TOML file describes (see `--print-config` for the
    /// shape); without it, serve files as the flags say.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["listen", "root", "allow_exec"])]
    pub config: Option<PathBuf>,
    /// Print every service that would run, with every key and its value
    /// (defaults included), as TOML, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Do not run the default config file ($XDG_CONFIG_HOME/sockit/sockit.toml,
    /// then /etc/sockit/sockit.toml), which `serve` without flags runs when
    /// it exists.
    #[arg(long, conflicts_with = "config")]
    pub no_config: bool,
    /// Set by main: whether any file-service flag was given on the command
    /// line (then the flags, not a default config file, say what to run).
    #[arg(skip)]
    pub flags_given: bool,
    #[command(flatten)]
    pub run_as: RunAsArgs,
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder to serve; created if missing. Or s3://BUCKET/PREFIX: an
    /// S3-compatible object store (credentials from the AWS_* environment
    /// variables or the config's [store]).
    #[arg(long, default_value = "sockit-data")]
    pub root: PathBuf,
    /// Address of the web page and its HTTP API, over the same folder;
    /// port 0 picks a free port. Its address with the login token is
    /// printed after the listeners. [default: --listen's address with port
    /// 8081, or port 0 when --listen's is 0]
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,
    /// Run no web listener.
    #[arg(long, conflicts_with_all = ["web", "qr", "web_assistant"])]
    pub no_web: bool,
    /// Add the network debugging assistant to the page: TCP client, TCP
    /// server and UDP sessions opened from the browser, run by this
    /// server (so it can reach whatever this host can). Off by default.
    #[arg(long)]
    pub web_assistant: bool,
    /// Print the web address as a QR code too, for phones on the LAN.
    #[arg(long)]
    pub qr: bool,
    /// Print the web address with its login token and exit.
    #[arg(long)]
    pub print_web_url: bool,
    /// Every SECS seconds (5 if not given), print each listener's
    /// connections and bytes and every transfer in progress to stderr: what
    /// the web dashboard shows.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stats: Option<u64>,
    /// Share for reading only: uploads, renames and removals are refused
    /// (framed clients and the web alike).
    #[arg(long, conflicts_with = "upload_only")]
    pub read_only: bool,
    /// A drop box: uploads only, never replacing a file; nothing is listed,
    /// downloaded or removed (framed clients and the web alike).
    #[arg(long)]
    pub upload_only: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    /// Most connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = sockit::server::DEFAULT_MAX_CONNECTIONS, value_parser = limits::parser::<usize>(&limits::MAX_CONNECTIONS))]
    pub max_connections: usize,
    /// Most connections from one address at once (a slow or hostile host
    /// cannot take every slot).
    #[arg(long, value_name = "N", default_value_t = sockit::server::DEFAULT_MAX_PER_PEER, value_parser = limits::parser::<usize>(&limits::MAX_PER_PEER))]
    pub max_per_peer: usize,
    /// Seconds a request header may take to arrive once begun.
    #[arg(long, value_name = "SECS", default_value_t = sockit::server::DEFAULT_REQUEST_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::REQUEST_TIMEOUT))]
    pub request_timeout: u64,
    /// Slowest an upload may arrive, in bytes/s averaged over a minute
    /// (0: no minimum).
    #[arg(long, value_name = "BYTES", default_value_t = sockit::server::DEFAULT_MIN_RATE, value_parser = limits::parser::<u64>(&limits::MIN_RATE))]
    pub min_rate: u64,
    /// Bytes of interrupted uploads kept for `put --resume`, in all; the
    /// oldest are deleted first.
    #[arg(long, value_name = "BYTES", default_value_t = sockit::files::staging::DEFAULT_MAX_PARTIAL_BYTES, value_parser = limits::parser::<u64>(&limits::MAX_PARTIAL_BYTES))]
    pub max_partial_bytes: u64,
    /// Flush each upload to disk (the file, then its folder) before
    /// confirming it, so a confirmed upload survives a power loss.
    #[arg(long)]
    pub fsync: bool,
    /// Listen backlog (pending connections the kernel holds).
    #[arg(long, default_value_t = sockit::server::DEFAULT_BACKLOG, value_parser = limits::parser::<u32>(&limits::BACKLOG))]
    pub backlog: u32,
    /// Seconds a client has to answer the auth challenge.
    #[arg(long, value_name = "SECS", default_value_t = sockit::server::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::HANDSHAKE_TIMEOUT))]
    pub handshake_timeout: u64,
    /// Seconds of silence from a client before it is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = sockit::server::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::IDLE_TIMEOUT))]
    pub idle_timeout: u64,
    /// Seconds shutdown waits for transfers in flight.
    #[arg(long, value_name = "SECS", default_value_t = sockit::server::DEFAULT_DRAIN_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::DRAIN_TIMEOUT))]
    pub drain_timeout: u64,
    /// Largest request header accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = sockit_proto::frame::DEFAULT_MAX_HEADER_LEN, value_parser = limits::parser::<u32>(&limits::MAX_HEADER))]
    pub max_header: u32,
    /// Do not set SO_REUSEADDR on the listening socket.
    #[arg(long)]
    pub no_reuse_address: bool,
    /// Allow authenticated clients to run commands (framed `exec` and the
    /// classic raw-command client). Off by default.
    #[arg(long)]
    pub allow_exec: bool,
    /// Seconds a command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = sockit::exec::DEFAULT_EXEC_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::EXEC_TIMEOUT))]
    pub exec_timeout: u64,
    /// Output kept per stream (stdout, stderr); the rest is cut with a marker.
    #[arg(long, value_name = "BYTES", default_value_t = sockit::exec::DEFAULT_MAX_OUTPUT, value_parser = limits::parser::<usize>(&limits::EXEC_MAX_OUTPUT))]
    pub exec_max_output: usize,
}

/// Who a server runs as once its ports are bound.
#[derive(Debug, Clone, Default, Args)]
pub struct RunAsArgs {
    /// Once the ports are bound, switch to this user (a name or a uid)
    /// before serving anything; needs root, and the server does not start
    /// if the switch fails. Ports below 1024 need root; serving does not.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The group to switch to [default: USER's own group].
    #[arg(long, value_name = "GROUP", requires = "user")]
    pub group: Option<String>,
}

/// Listener settings shared by the small services' servers.
#[derive(Debug, Args)]
pub struct ListenerArgs {
    #[command(flatten)]
    pub run_as: RunAsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    /// Most TCP connections served at once.
    #[arg(long, default_value_t = sockit::server::DEFAULT_MAX_CONNECTIONS, value_parser = limits::parser::<usize>(&limits::MAX_CONNECTIONS))]
    pub max_connections: usize,
    /// Most TCP connections from one address at once.
    #[arg(long, value_name = "N", default_value_t = sockit::server::DEFAULT_MAX_PER_PEER, value_parser = limits::parser::<usize>(&limits::MAX_PER_PEER))]
    pub max_per_peer: usize,
    /// Listen backlog.
    #[arg(long, default_value_t = sockit::server::DEFAULT_BACKLOG, value_parser = limits::parser::<u32>(&limits::BACKLOG))]
    pub backlog: u32,
    /// Seconds of silence before a TCP client is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = sockit::server::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = limits::parser::<u64>(&limits::IDLE_TIMEOUT))]
    pub idle_timeout: u64,
    /// Do not set SO_REUSEADDR.
    #[arg(long)]
    pub no_reuse_address: bool,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "sockit exec [OPTIONS] HOST[:PORT] CMD [ARG]...\n       sockit exec [OPTIONS] -s HOST[:PORT] CMD [ARG]..."
)]
pub struct ExecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Largest output accepted from the server, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_output: u64,
    /// Send no stdin (as ssh -n); without it, stdin is sent when it is not
    /// a terminal, up to 16 MiB.
    #[arg(short = 'n', long)]
    pub no_stdin: bool,
    /// The server (left out with -s or SOCKIT_SERVER), then the command and
    /// its arguments, run without a shell; options after CMD are the
    /// command's (`--` also ends sockit's options).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_names = ["HOST[:PORT]", "CMD"]
    )]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EchoArgs {
    #[command(subcommand)]
    pub serve: Option<EchoServe>,
    /// The server: HOST or HOST:PORT (port 8007, `echo serve`'s, when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub addr: Option<HostPort>,
    /// Text to send (the words are joined with spaces).
    pub text: Vec<String>,
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum EchoServe {
    /// Run echo servers (TCP, UDP or both; default both on 127.0.0.1:8007).
    Serve {
        /// Where to listen: tcp://ADDR, udp://ADDR, or ADDR for both
        /// (repeatable); port 0 picks a free port.
        #[arg(long, value_name = "[tcp://|udp://]ADDR", value_parser = parse_listen)]
        listen: Vec<Listen>,
        /// Short for --listen tcp://ADDR.
        #[arg(long, value_name = "ADDR")]
        tcp: Vec<SocketAddr>,
        /// Short for --listen udp://ADDR.
        #[arg(long, value_name = "ADDR")]
        udp: Vec<SocketAddr>,
        /// Answer in upper case (Unicode-aware), like the classic "upper" server.
        #[arg(long)]
        upper: bool,
        #[command(flatten)]
        listener: ListenerArgs,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TimeArgs {
    #[command(subcommand)]
    pub serve: Option<TimeServe>,
    /// The server: HOST or HOST:PORT (port 9000 for the classic service,
    /// 13 with --daytime, 37 with --rfc868, when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub addr: Option<HostPort>,
    /// strftime format for the classic service [default: the server's, %Y-%m-%d %X].
    pub format: Option<String>,
    /// Ask an RFC 868 server (prints the time it returns).
    #[arg(long, conflicts_with = "daytime")]
    pub rfc868: bool,
    /// Ask an RFC 867 daytime server.
    #[arg(long)]
    pub daytime: bool,
    /// Use TCP (for --daytime and --rfc868; the classic service is UDP only).
    #[arg(long)]
    pub tcp: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum TimeServe {
    /// Run time servers: the classic service on UDP; daytime and RFC 868 on TCP and UDP.
    Serve {
        /// The classic strftime service (UDP).
        #[arg(long, visible_alias = "listen", value_name = "ADDR")]
        udp: Option<SocketAddr>,
        /// RFC 867 daytime, on TCP and UDP at this address.
        #[arg(long)]
        daytime: Option<SocketAddr>,
        /// RFC 868 time, on TCP and UDP at this address.
        #[arg(long)]
        rfc868: Option<SocketAddr>,
        #[command(flatten)]
        listener: ListenerArgs,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DownloadArgs {
    #[command(subcommand)]
    pub serve: Option<DownloadServe>,
    /// The server: HOST or HOST:PORT (port 7890 when left out).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_host_port)]
    pub addr: Option<HostPort>,
    /// File name to ask for.
    pub name: Option<String>,
    /// Where to save it: a file name, or a folder (existing, or ending in
    /// `/`) to save into [default: the name's last component, here].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Largest file accepted, in bytes: the protocol sends no size, and a
    /// server that never stops is refused here.
    #[arg(long, value_name = "BYTES", default_value_t = sockit::clients::DEFAULT_MAX_DOWNLOAD)]
    pub max_size: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Seconds to wait at each step.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum DownloadServe {
    /// Serve a folder's files to the one-shot download client.
    Serve {
        /// Address to listen on; port 0 picks a free port (printed on the first line).
        #[arg(long, default_value = "127.0.0.1:7890")]
        listen: SocketAddr,
        /// Folder whose files are served; created if missing.
        #[arg(long, default_value = "sockit-data")]
        root: PathBuf,
        #[command(flatten)]
        listener: ListenerArgs,
    },
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The file server, instead of naming it first: HOST or HOST:PORT
    /// (port 8080 when left out).
    #[arg(
        long,
        short = 's',
        env = "SOCKIT_SERVER",
        value_name = "HOST[:PORT]",
        value_parser = parse_host_port,
        global = true
    )]
    pub server: Option<HostPort>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Seconds to wait for the server at each step.
    #[arg(long, value_name = "SECS", default_value_t = sockit::files::client::DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// One JSON object per line on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    /// Splits a file command's operands into its server and the rest. The
    /// server comes first, as in every client, unless `-s`/`--server` or
    /// `SOCKIT_SERVER` named it: then every operand is a path, so a script
    /// that sets the server once reads as before.
    pub fn split_server<'a>(
        &self,
        command: &str,
        operands: &'a [String],
        rest: std::ops::RangeInclusive<usize>,
        shape: &str,
    ) -> Result<(HostPort, &'a [String]), crate::UsageError> {
        let usage = || {
            crate::UsageError(format!(
                "usage: sockit {command} HOST[:PORT] {shape}, or sockit {command} -s HOST[:PORT] {shape} \
                 (SOCKIT_SERVER also names the server)"
            ))
        };
        let (server, rest_ops) = match &self.server {
            Some(server) => (server.clone(), operands),
            None => {
                let (first, tail) = operands.split_first().ok_or_else(usage)?;
                let server = HostPort::parse(first)
                    .map_err(|e| crate::UsageError(format!("{first:?} is not a server ({e}); {}", usage().0)))?;
                (server, tail)
            }
        };
        if !rest.contains(&rest_ops.len()) {
            return Err(usage());
        }
        Ok((server, rest_ops))
    }

    /// [`Self::split_server`] for a command that takes exactly N paths.
    pub fn server_and<'a, const N: usize>(
        &self,
        command: &str,
        operands: &'a [String],
        shape: &str,
    ) -> Result<(HostPort, &'a [String; N]), crate::UsageError> {
        let (server, rest) = self.split_server(command, operands, N..=N, shape)?;
        let rest = rest
            .try_into()
            .map_err(|_| crate::UsageError(format!("usage: sockit {command} HOST[:PORT] {shape}")))?;
        Ok((server, rest))
    }
}

#[derive(Debug, Args)]
#[command(
    override_usage = "sockit put [OPTIONS] HOST[:PORT] LOCAL [REMOTE]\n       sockit put [OPTIONS] -s HOST[:PORT] LOCAL [REMOTE]"
)]
pub struct PutArgs {
    /// The server (left out with -s or SOCKIT_SERVER); the local file (or
    /// folder with -r); its name on the server [default: the local name].
    #[arg(value_names = ["HOST[:PORT]", "LOCAL", "REMOTE"], required = true, num_args = 1..=3)]
    pub operands: Vec<String>,
    /// Upload a folder and everything under it, as one pipelined
    /// operation: a file that fails is reported and the others go on (exit
    /// code 1 if any failed); `--resume` finishes an interrupted tree.
    #[arg(short, long)]
    pub recursive: bool,
    /// Continue an interrupted upload from what the server kept.
    #[arg(long)]
    pub resume: bool,
    /// Speak to a classic course server: its header, no reply expected.
    #[arg(long, conflicts_with_all = ["recursive", "resume"])]
    pub classic: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "sockit get [OPTIONS] HOST[:PORT] REMOTE\n       sockit get [OPTIONS] -s HOST[:PORT] REMOTE"
)]
pub struct GetArgs {
    /// The server (left out with -s or SOCKIT_SERVER), then the name on
    /// the server.
    #[arg(value_names = ["HOST[:PORT]", "REMOTE"], required = true, num_args = 1..=2)]
    pub operands: Vec<String>,
    /// Folder to write into [default: the current folder].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Download a folder and everything under it, as one pipelined
    /// operation: a file that fails is reported and the others go on (exit
    /// code 1 if any failed); `--resume` finishes an interrupted tree.
    #[arg(short, long)]
    pub recursive: bool,
    /// Continue an interrupted download from the partial file kept locally.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(override_usage = "sockit ls [OPTIONS] HOST[:PORT] [PATH]\n       sockit ls [OPTIONS] -s HOST[:PORT] [PATH]")]
pub struct LsArgs {
    /// The server (left out with -s or SOCKIT_SERVER), then the folder on
    /// the server [default: the root].
    #[arg(value_names = ["HOST[:PORT]", "PATH"], num_args = 0..=2)]
    pub operands: Vec<String>,
    /// List everything below, not just the folder.
    #[arg(short, long)]
    pub recursive: bool,
    /// List the interrupted uploads the server keeps for `put --resume`
    /// (path, bytes kept, whole size) instead of files.
    #[arg(long, conflicts_with = "recursive")]
    pub partials: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    /// The server (left out with -s or SOCKIT_SERVER), then the path on
    /// the server.
    #[arg(value_names = ["HOST[:PORT]", "PATH"], required = true, num_args = 1..=2)]
    pub operands: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(override_usage = "sockit rm [OPTIONS] HOST[:PORT] PATH\n       sockit rm [OPTIONS] -s HOST[:PORT] PATH")]
pub struct RmArgs {
    /// The server (left out with -s or SOCKIT_SERVER), then the path on
    /// the server.
    #[arg(value_names = ["HOST[:PORT]", "PATH"], required = true, num_args = 1..=2)]
    pub operands: Vec<String>,
    /// Remove a folder and everything in it.
    #[arg(short, long)]
    pub recursive: bool,
    /// Remove the server's kept partial of an interrupted upload of PATH
    /// (see `ls --partials`), not the file.
    #[arg(long, conflicts_with = "recursive")]
    pub partial: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The capture file (pcap or pcapng).
    pub capture: PathBuf,
    /// Read a port as a protocol: PORT=APP, APP one of framed, tftp, ipmsg,
    /// echo, time, text, raw (repeatable).
    #[arg(long, value_name = "PORT=APP", value_parser = parse_decode_rule)]
    pub decode: Vec<sockit_proto::explain::DecodeRule>,
    /// One JSON object per conversation, packet and skipped frame, then
    /// one per conversation's totals.
    #[arg(long)]
    pub json: bool,
}

fn parse_decode_rule(s: &str) -> Result<sockit_proto::explain::DecodeRule, String> {
    use sockit_proto::explain::{App, DecodeRule};
    let names: Vec<&str> = App::NAMES.iter().map(|(n, _)| *n).collect();
    let (port, app) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected PORT=APP, such as 6969=tftp"))?;
    let port = port.parse::<u16>().map_err(|_| format!("{port}: not a port number"))?;
    let app = App::from_name(app).ok_or_else(|| format!("{app}: expected one of {}", names.join(", ")))?;
    Ok(DecodeRule { port, app })
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The echo server written in one concurrency model of the course.
    #[command(after_help = "Models, in the order the course teaches them:
  iterative    one client at a time
  process      a process per connection (the socket as the child's stdin and stdout)
  thread       a thread per connection
  pool         a fixed pool of threads taking connections from a queue
  nonblocking  non-blocking sockets polled in a loop
  select       select(2); no descriptor at or above 1024
  poll         poll(2)
  epoll        epoll(7), level-triggered
  epoll-et     epoll(7), edge-triggered: read until EAGAIN
  async        tokio tasks (the course's gevent)

Examples:
  sockit lab serve --model select --listen 127.0.0.1:9000
  sockit lab serve --model iterative     # then connect twice: the second waits")]
    Serve(LabServeArgs),
    /// The sticky-packet lesson: how TCP reads cut a stream of small
    /// messages (merged, split), and how a length prefix gives them back
    /// whole. Over loopback, in four scenes.
    #[command(after_help = "Scenes:
  1. messages back to back, the receiver reads late: several in one read
  2. a pause after each message, the receiver waiting: one per read, usually
  3. messages larger than a read: each split across reads
  4. scene 1 with a 4-byte length before each message: every one whole

Examples:
  sockit lab sticky
  sockit lab sticky --messages 5 --size 8 --nodelay
  sockit lab sticky --json")]
    Sticky(LabStickyArgs),
    /// Runs the same echo load against each model in turn, at growing
    /// numbers of connections, and reports requests/s, latency, server CPU
    /// per request, memory per idle connection and where each stops scaling.
    #[command(after_help = "Examples:
  sockit lab compare                                  # every model, 1-1000 connections, 3 s each
  sockit lab compare --models select,epoll,async --connections 10,100 --duration 1
  sockit lab compare --csv lab.csv --json")]
    Compare(LabCompareArgs),
    /// Run a command while tcpdump records the traffic (loopback by
    /// default) to a file, for `sockit explain`.
    #[command(after_help = "Examples:
  sockit lab capture -- sockit put 127.0.0.1 notes.txt
  sockit explain capture.pcap

  sockit lab capture -o tftp.pcap --filter udp -- tftp 127.0.0.1 -c get boot.img

Needs tcpdump and the right to capture (root, or CAP_NET_RAW).")]
    Capture(LabCaptureArgs),
    /// Echo standard input to standard output: the child `process` runs per connection.
    #[command(hide = true)]
    EchoStdio,
}

#[derive(Debug, Args)]
pub struct LabServeArgs {
    /// The concurrency model.
    #[arg(long, value_parser = parse_model)]
    pub model: sockit::lab::Model,
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:7007")]
    pub listen: SocketAddr,
    /// Listen backlog.
    #[arg(long, default_value_t = sockit::server::DEFAULT_BACKLOG, value_parser = limits::parser::<u32>(&limits::BACKLOG))]
    pub backlog: u32,
}

#[derive(Debug, Args)]
pub struct LabCaptureArgs {
    /// The capture file to write (pcap).
    #[arg(short, long, value_name = "FILE", default_value = "capture.pcap")]
    pub output: PathBuf,
    /// The interface to capture on.
    #[arg(short, long, default_value = "lo")]
    pub interface: String,
    /// A pcap filter, such as "tcp port 8080" (tcpdump's syntax).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// The kernel's capture buffer in MiB; a small one drops packets of a
    /// fast loopback transfer.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub buffer: u32,
    /// Seconds to keep capturing after the command ends, for the peer's
    /// side of the close.
    #[arg(long, value_name = "SECS", default_value_t = 0.5)]
    pub linger: f64,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabStickyArgs {
    /// Messages the sender writes, one write each.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub messages: u16,
    /// Bytes per message (scene 3 uses 2.5 reads' worth).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub size: u32,
    /// Bytes each read asks for, the course's recv(1024).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1048576))]
    pub recv_size: u32,
    /// Set TCP_NODELAY on the sender (small writes go out at once).
    #[arg(long)]
    pub nodelay: bool,
    /// One JSON object per scene.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabCompareArgs {
    /// Models to compare, comma-separated [default: all ten].
    #[arg(long, value_delimiter = ',', value_parser = parse_model)]
    pub models: Vec<sockit::lab::Model>,
    /// Connections at once, one load per value, comma-separated; `max` is
    /// as many as the descriptor limit and the local ports allow.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,max", value_parser = parse_load)]
    pub connections: Vec<LabLoad>,
    /// Seconds of load at each number of connections.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub duration: f64,
    /// Bytes per request.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Idle connections held open to measure memory per connection.
    #[arg(long, default_value_t = 500)]
    pub idle: usize,
    /// Also write the results as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also draw req/s and p99 against connections, one line per model, to
    /// FILE: SVG or PNG by its extension (repeat for both).
    #[arg(long, value_name = "FILE", value_parser = parse_chart_path)]
    pub chart: Vec<PathBuf>,
    /// One JSON object per measurement and per model.
    #[arg(long)]
    pub json: bool,
}

/// One load of `lab compare`: a number of connections, or the most this
/// machine allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabLoad {
    Connections(usize),
    Max,
}

fn parse_load(s: &str) -> Result<LabLoad, String> {
    match s {
        "max" => Ok(LabLoad::Max),
        n => match n.parse::<usize>() {
            Ok(c @ 1..=1_000_000) => Ok(LabLoad::Connections(c)),
            _ => Err(format!("{s}: expected a number of connections (1 to 1000000) or max")),
        },
    }
}

fn parse_chart_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg" | "png") => Ok(path),
        _ => Err(format!("{s}: the chart is written as .svg or .png; name the file so")),
    }
}

fn parse_model(s: &str) -> Result<sockit::lab::Model, String> {
    sockit::lab::Model::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = sockit::lab::Model::ALL.iter().map(|m| m.name()).collect();
        format!("{s}: expected one of {}", names.join(", "))
    })
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// C connections, each sending a message and waiting for its echo, for S seconds.
    #[command(after_help = "Examples:
  sockit bench echo 127.0.0.1:7007 --connections 100 --duration 5
  sockit bench echo 127.0.0.1:7007 --udp --connections 10 --duration 5 --json")]
    Echo {
        /// Echo server address (an IP address and port).
        addr: SocketAddr,
        /// Connections (TCP) or sockets (UDP) sending at once.
        #[arg(long, short = 'c', default_value_t = 10)]
        connections: usize,
        /// Seconds of load.
        #[arg(long, short = 'd', default_value_t = 5)]
        duration: u64,
        /// Bytes per message.
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Load a UDP echo server instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Connects in flight at once while opening connections.
        /// Connects in flight at once while opening connections.
        #[arg(long, default_value_t = sockit::bench::DEFAULT_CONNECT_PARALLELISM)]
        connect_parallelism: usize,
        /// The report as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Room fan-out: M members join a line-forwarding server (sockit's
    /// chat room, ncat --broker), S of them send, all count deliveries.
    #[command(after_help = "Examples:
  sockit bench chat 127.0.0.1:7070 --members 1000 --senders 10 --messages 200 --insecure-no-auth
  sockit bench chat 127.0.0.1:7071 --members 1000 --insecure-no-auth --json   # an ncat --broker
  sockit bench chat 127.0.0.1:7070 127.0.0.1:7080 127.0.0.1:7090 -m 999 --insecure-no-auth   # servers on one bus")]
    Chat {
        /// The room (an IP address and port); several servers sharing one
        /// room (--bus) take the members in turn.
        #[arg(required = true, num_args = 1..)]
        addrs: Vec<SocketAddr>,
        /// Members that join the room (all of them count deliveries).
        #[arg(long, short = 'm', default_value_t = 100)]
        members: usize,
        /// Members that also send.
        #[arg(long, short = 's', default_value_t = 10)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Pace the senders: this many lines a second in all, spread evenly
        /// (default: as fast as the server takes them).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds to wait for a delivery before counting the rest missing.
        #[arg(long, default_value_t = 10)]
        drain: u64,
        /// Connects in flight at once while opening connections.
        #[arg(long, default_value_t = sockit::bench::DEFAULT_CONNECT_PARALLELISM)]
        connect_parallelism: usize,
        /// The report as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Open N connections and hold them idle (prints `holding N` when ready).
    Idle {
        /// The server (an IP address and port).
        addr: SocketAddr,
        /// Connections to open and hold.
        #[arg(long, short = 'c')]
        connections: usize,
        /// Seconds to hold them (until then, or until stdin closes).
        #[arg(long, default_value_t = 60)]
        hold: u64,
        /// Connects in flight at once while opening connections.
        #[arg(long, default_value_t = sockit::bench::DEFAULT_CONNECT_PARALLELISM)]
        connect_parallelism: usize,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every option and argument of every subcommand says what it is.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {}: no about", sub.get_name()));
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }
}
