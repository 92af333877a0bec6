//! The command-line flags of this chapter, as a reusable piece: later chapters' binaries flatten
//! [`IsolationArgs`] into their own, so every flag a student learned here keeps working there.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::{parse_list, IdMap, Isolation, Namespace, NamespaceError, Network, PortMapping};

/// Flags that choose the namespaces and what to set up in them.
#[derive(Debug, Clone, Default, Args)]
pub struct IsolationArgs {
    /// Namespaces to create, comma-separated: user, mnt, uts, ipc, net, pid, cgroup, time.
    /// Default: mnt,uts,ipc,net,pid,cgroup (as docker run), plus user when not root.
    #[arg(long, value_name = "LIST")]
    pub ns: Option<String>,

    /// Add a user namespace in which you are root (works without root on the host).
    #[arg(long)]
    pub rootless: bool,

    /// Hostname inside (needs uts).
    #[arg(long)]
    pub hostname: Option<String>,

    /// uid map INSIDE:OUTSIDE:COUNT[,…] (needs user). Default: your uid is root inside.
    #[arg(long, value_name = "MAP")]
    pub uid_map: Option<String>,

    /// gid map INSIDE:OUTSIDE:COUNT[,…] (needs user). Default: your gid is root's group inside.
    #[arg(long, value_name = "MAP")]
    pub gid_map: Option<String>,

    /// Network inside a net namespace: loopback only, or a veth pair to the host (root).
    #[arg(long, value_enum, default_value_t = NetworkArg::Loopback)]
    pub net: NetworkArg,

    /// Publish a TCP port: [HOST_IP:]HOST_PORT:CONTAINER_PORT (root; implies --net veth).
    #[arg(short, long, value_name = "MAPPING")]
    pub publish: Option<String>,

    /// Print each set-up step on stderr as it happens.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `--net`.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum NetworkArg {
    #[default]
    Loopback,
    Veth,
}

impl IsolationArgs {
    /// Builds the [`Isolation`] these flags describe. Without root and without `--ns`, it goes
    /// rootless (and says so on stderr unless `--rootless` was given).
    pub fn to_isolation(&self, program_name: &str) -> Result<Isolation, NamespaceError> {
        let root = nix::unistd::geteuid().is_root();
        let mut isolation = match &self.ns {
            Some(list) => Isolation::new(parse_list(list)?),
            None if root => Isolation::container_defaults(),
            None => {
                if !self.rootless {
                    eprintln!("{program_name}: not root, so adding a user namespace (rootless mode; say --rootless to silence this)");
                }
                Isolation::rootless()
            }
        };
        if self.rootless {
            isolation = isolation.with_namespace(Namespace::User);
        }
        if let Some(name) = &self.hostname {
            isolation = isolation.hostname(name);
        }
        if let Some(map) = &self.uid_map {
            isolation = isolation.uid_maps(IdMap::parse_list("uid", map)?);
        }
        if let Some(map) = &self.gid_map {
            isolation = isolation.gid_maps(IdMap::parse_list("gid", map)?);
        }
        if let NetworkArg::Veth = self.net {
            isolation = isolation.network(Network::Veth);
        }
        if let Some(spec) = &self.publish {
            isolation = isolation.publish(spec.parse::<PortMapping>()?);
        }
        if self.verbose {
            let prefix = program_name.to_string();
            isolation = isolation.observe(Arc::new(move |step: &str| {
                let _ = writeln!(std::io::stderr(), "{prefix}: {step}");
            }));
        }
        Ok(isolation)
    }
}
