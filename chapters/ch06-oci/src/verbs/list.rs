//! `list [--format json]`: every container under `--root`.

use serde::Serialize;

use crate::state::Store;

/// One container as `runc list --format json` shows it.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
}

/// The containers, with their status read now.
pub fn list(store: &Store) -> Vec<Listed> {
    store
        .list()
        .into_iter()
        .map(|c| {
            let state = c.oci_state();
            Listed {
                id: c.record.id.clone(),
                pid: state.pid().unwrap_or(0),
                status: c.status_name(),
                bundle: c.record.bundle.display().to_string(),
                rootfs: c.record.rootfs.display().to_string(),
                created: c.record.created.clone(),
                owner: c.record.owner.clone(),
            }
        })
        .collect()
}

/// A table (`ID PID STATUS BUNDLE CREATED OWNER`) or JSON.
pub fn render(listed: &[Listed], json: bool, quiet: bool) -> String {
    if json {
        return serde_json::to_string(listed).unwrap_or_else(|_| "[]".into()) + "\n";
    }
    if quiet {
        return listed.iter().map(|l| format!("{}\n", l.id)).collect();
    }
    let mut out = format!(
        "{:<20} {:<8} {:<8} {:<40} {:<31} OWNER\n",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for l in listed {
        out.push_str(&format!(
            "{:<20} {:<8} {:<8} {:<40} {:<31} {}\n",
            l.id, l.pid, l.status, l.bundle, l.created, l.owner
        ));
    }
    out
}
