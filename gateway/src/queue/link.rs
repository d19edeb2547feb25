//! Whether the device has a way out: its default routes, read from `/proc/net/route` and
//! `/proc/net/ipv6_route`. The sync loop compares them between polls; a route that appears
//! (a modem dialled in, a cable plugged, Wi-Fi joined) starts a sync at once.

use crate::device::SystemRoot;

/// The interfaces that carry a default route, as `eth0,wwan0`, or `None` without one.
pub(super) fn default_route(root: &SystemRoot) -> Option<String> {
    let mut interfaces: Vec<String> = Vec::new();
    // Iface Destination Gateway Flags ...: destination 00000000 with RTF_UP (0x1).
    if let Ok(text) = std::fs::read_to_string(root.path("/proc/net/route")) {
        for fields in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            let up = fields
                .get(3)
                .and_then(|f| u32::from_str_radix(f, 16).ok())
                .is_some_and(|flags| flags & 1 != 0);
            if fields.get(1) == Some(&"00000000") && up {
                interfaces.push(fields[0].to_owned());
            }
        }
    }
    // dest prefix-len src src-len next-hop metric refcnt use flags iface: ::/0 over a device.
    if let Ok(text) = std::fs::read_to_string(root.path("/proc/net/ipv6_route")) {
        for fields in text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            let default = fields.first().is_some_and(|d| d.bytes().all(|b| b == b'0'))
                && fields.get(1) == Some(&"00");
            if let (true, Some(iface)) = (default, fields.get(9)) {
                if *iface != "lo" {
                    interfaces.push((*iface).to_owned());
                }
            }
        }
    }
    interfaces.sort();
    interfaces.dedup();
    (!interfaces.is_empty()).then(|| interfaces.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_of_both_families() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("proc/net");
        std::fs::create_dir_all(&net).unwrap();
        let root = SystemRoot::new(dir.path());
        assert_eq!(default_route(&root), None);
        std::fs::write(
            net.join("route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
        )
        .unwrap();
        assert_eq!(
            default_route(&root),
            None,
            "a subnet route is not a way out"
        );
        std::fs::write(
            net.join("route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             wwan0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        )
        .unwrap();
        std::fs::write(
            net.join("ipv6_route"),
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
             fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
             00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n",
        )
        .unwrap();
        assert_eq!(default_route(&root).as_deref(), Some("eth0,wwan0"));
    }
}
