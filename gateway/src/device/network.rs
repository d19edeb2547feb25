//! Network links from `/sys/class/net`.

use serde::Serialize;

use super::{file_name, read_number, read_trimmed, SystemRoot};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkLink {
    pub name: String,
    /// `up`, `down`, `dormant`, `unknown` (loopback and some virtual links say `unknown`).
    pub operstate: Option<String>,
    /// Whether a cable or radio link is present.
    pub carrier: Option<bool>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// Negotiated speed; absent for links that have none.
    pub speed_mbps: Option<u32>,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub wireless: bool,
}

pub fn network_links(root: &SystemRoot) -> Vec<NetworkLink> {
    root.entries("/sys/class/net", "")
        .into_iter()
        .map(|dir| NetworkLink {
            name: file_name(&dir),
            operstate: read_trimmed(&dir.join("operstate")),
            // Reading `carrier` of a link that is administratively down fails with EINVAL.
            carrier: read_number::<u8>(&dir.join("carrier")).map(|c| c == 1),
            mac: read_trimmed(&dir.join("address")).filter(|a| !a.is_empty()),
            mtu: read_number(&dir.join("mtu")),
            // -1 when unknown.
            speed_mbps: read_trimmed(&dir.join("speed")).and_then(|s| s.parse().ok()),
            rx_bytes: read_number(&dir.join("statistics/rx_bytes")),
            tx_bytes: read_number(&dir.join("statistics/tx_bytes")),
            wireless: dir.join("wireless").exists() || dir.join("phy80211").exists(),
        })
        .collect()
}
