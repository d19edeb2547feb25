//! Event logs: the gateway's own (JSON lines, one per measurement, kept for the current boot)
//! and the firmware's TCG2 log (`binary_bios_measurements`, crypto-agile format), and the
//! replay that turns a log into the PCR values it predicts.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256 as Sha256Hasher};

use super::evidence::from_hex;
use super::Sha256;

/// One measurement the gateway made: `PCR[pcr] = SHA-256(PCR[pcr] ‖ sha256)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    pub pcr: u8,
    /// What was measured: `gateway-binary` or `gateway-config`.
    pub event: String,
    /// The digest extended (hex).
    pub sha256: String,
    /// The file measured.
    pub detail: String,
}

/// A line of the log file: the event and the boot it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct LoggedEvent {
    boot_id: String,
    #[serde(flatten)]
    event: AppEvent,
}

/// `PCR = SHA-256(PCR ‖ digest)`.
pub fn extend(pcr: &Sha256, digest: &[u8]) -> Sha256 {
    let mut hasher = Sha256Hasher::new();
    hasher.update(pcr);
    hasher.update(digest);
    hasher.finalize().into()
}

/// The gateway's event log file. PCRs start from zero at each boot, so the file keeps only the
/// events of the boot it was written in (`/proc/sys/kernel/random/boot_id`).
#[derive(Debug, Clone)]
pub struct AppEventLog {
    path: PathBuf,
    boot_id: String,
}

impl AppEventLog {
    pub fn new(path: PathBuf) -> std::io::Result<Self> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
            .trim()
            .to_owned();
        Ok(Self { path, boot_id })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events logged during this boot, oldest first (a missing file is an empty log).
    pub fn read(&self) -> std::io::Result<Vec<AppEvent>> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            // A line cut by a crash while it was written is not an event.
            if let Ok(logged) = serde_json::from_str::<LoggedEvent>(&line) {
                if logged.boot_id == self.boot_id {
                    events.push(logged.event);
                }
            }
        }
        Ok(events)
    }

    /// Replaces the file with `events` (this boot's), written to a temporary file first and
    /// renamed over it.
    pub fn rewrite(&self, events: &[AppEvent]) -> std::io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        let mut file = File::create(&temporary)?;
        for event in events {
            self.write_line(&mut file, event)?;
        }
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)
    }

    /// Appends `event` and syncs it to disk, before the PCR is extended. A line a crash cut
    /// short is ended first, so that it cannot swallow this one.
    pub fn append(&self, event: &AppEvent) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let length = file.metadata()?.len();
        let mut last = [b'\n'];
        if length > 0 {
            file.read_exact_at(&mut last, length - 1)?;
        }
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
        self.write_line(&mut file, event)?;
        file.sync_all()
    }

    fn write_line(&self, file: &mut File, event: &AppEvent) -> std::io::Result<()> {
        let logged = LoggedEvent {
            boot_id: self.boot_id.clone(),
            event: event.clone(),
        };
        let line = serde_json::to_string(&logged).map_err(std::io::Error::other)?;
        writeln!(file, "{line}")
    }
}

/// The PCR values `events` lead to from all-zero PCRs; `Err` names an event whose digest is
/// not 32 bytes of hex.
pub fn replay_app(events: &[AppEvent]) -> Result<BTreeMap<u8, Sha256>, String> {
    let mut pcrs = BTreeMap::new();
    for event in events {
        let digest = from_hex(&event.sha256)
            .filter(|d| d.len() == 32)
            .ok_or_else(|| format!("event {:?}: sha256 is not a SHA-256 digest", event.event))?;
        let pcr = pcrs.entry(event.pcr).or_insert([0u8; 32]);
        *pcr = extend(pcr, &digest);
    }
    Ok(pcrs)
}

/// One event of the firmware log that extends a PCR in the SHA-256 bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareEvent {
    pub pcr: u32,
    pub event_type: u32,
    pub sha256: Sha256,
}

/// `EV_NO_ACTION`: informational, never extended.
const EV_NO_ACTION: u32 = 0x3;
const TPM_ALG_SHA256: u16 = 0x000b;

/// What a parsed firmware log says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareLog {
    pub events: Vec<FirmwareEvent>,
    /// The locality the firmware started the TPM from (it becomes PCR 0's initial last byte).
    pub startup_locality: u8,
}

impl FirmwareLog {
    /// The PCR values the log leads to, for every PCR it extends.
    pub fn replay(&self) -> BTreeMap<u8, Sha256> {
        let mut pcrs = BTreeMap::new();
        for event in &self.events {
            let Ok(index) = u8::try_from(event.pcr) else {
                continue;
            };
            let pcr = pcrs.entry(index).or_insert_with(|| {
                let mut initial = [0u8; 32];
                if index == 0 {
                    initial[31] = self.startup_locality;
                }
                initial
            });
            *pcr = extend(pcr, &event.sha256);
        }
        pcrs
    }
}

/// A little-endian reader over a byte slice that reports where it ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Parses a crypto-agile TCG2 event log: a `TCG_PCClientPCREvent` header whose event is the
/// `Spec ID Event03` (it lists each algorithm's digest size), then `TCG_PCR_EVENT2` records.
pub fn parse_firmware_log(bytes: &[u8]) -> Result<FirmwareLog, String> {
    let mut r = Reader { bytes, at: 0 };
    // Header: pcrIndex, eventType (EV_NO_ACTION), SHA-1 digest (zero), eventSize, event.
    r.take(8)?;
    r.take(20)?;
    let size = r.u32()? as usize;
    let mut spec = Reader {
        bytes: r.take(size)?,
        at: 0,
    };
    if spec.take(16)? != b"Spec ID Event03\0" {
        return Err("not a crypto-agile TCG2 log (no Spec ID Event03 header)".into());
    }
    spec.take(8)?; // platformClass, version, errata, uintnSize
    let algorithms = spec.u32()?;
    let mut digest_sizes = BTreeMap::new();
    for _ in 0..algorithms {
        let alg = spec.u16()?;
        digest_sizes.insert(alg, spec.u16()? as usize);
    }
    if !digest_sizes.contains_key(&TPM_ALG_SHA256) {
        return Err("the log has no SHA-256 digests".into());
    }

    let mut log = FirmwareLog::default();
    while !r.done() {
        let pcr = r.u32()?;
        let event_type = r.u32()?;
        let count = r.u32()?;
        let mut sha256 = None;
        for _ in 0..count {
            let alg = r.u16()?;
            let size = *digest_sizes
                .get(&alg)
                .ok_or_else(|| format!("digest algorithm {alg:#06x} not in the header"))?;
            let digest = r.take(size)?;
            if alg == TPM_ALG_SHA256 {
                sha256 = Some(digest);
            }
        }
        let size = r.u32()? as usize;
        let data = r.take(size)?;
        if event_type == EV_NO_ACTION {
            if let Some(locality) = data.strip_prefix(b"StartupLocality\0") {
                log.startup_locality = locality.first().copied().unwrap_or(0);
            }
            continue;
        }
        let sha256 = sha256
            .and_then(|d| Sha256::try_from(d).ok())
            .ok_or_else(|| {
                format!(
                    "event {} on PCR {pcr} has no SHA-256 digest",
                    log.events.len()
                )
            })?;
        log.events.push(FirmwareEvent {
            pcr,
            event_type,
            sha256,
        });
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::evidence::to_hex;

    /// A log as OVMF writes it: the Spec ID header (SHA-1 and SHA-256), a StartupLocality
    /// event, two events on PCR 0 and one on PCR 7.
    fn synthetic_log(events: &[(u32, u32, [u8; 32])]) -> Vec<u8> {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend([0, 0, 0, 0, 0, 2, 0, 2]);
        spec.extend(2u32.to_le_bytes());
        spec.extend([0x04, 0x00, 20, 0x00]); // SHA-1, 20 bytes
        spec.extend([0x0b, 0x00, 32, 0x00]); // SHA-256, 32 bytes
        spec.push(0);
        let mut log = Vec::new();
        log.extend(0u32.to_le_bytes());
        log.extend(EV_NO_ACTION.to_le_bytes());
        log.extend([0u8; 20]);
        log.extend((spec.len() as u32).to_le_bytes());
        log.extend(spec);
        let mut record = |pcr: u32, event_type: u32, sha256: [u8; 32], data: &[u8]| {
            log.extend(pcr.to_le_bytes());
            log.extend(event_type.to_le_bytes());
            log.extend(2u32.to_le_bytes());
            log.extend([0x04, 0x00]);
            log.extend([0xaa; 20]);
            log.extend([0x0b, 0x00]);
            log.extend(sha256);
            log.extend((data.len() as u32).to_le_bytes());
            log.extend(data);
        };
        record(0, EV_NO_ACTION, [0; 32], b"StartupLocality\0\x03");
        for &(pcr, event_type, digest) in events {
            record(pcr, event_type, digest, b"event data");
        }
        log
    }

    #[test]
    fn a_firmware_log_replays_per_pcr_from_the_startup_locality() {
        let events = [
            (0, 0x8, [1; 32]),
            (7, 0x8000_00e0, [2; 32]),
            (0, 0x4, [3; 32]),
        ];
        let log = parse_firmware_log(&synthetic_log(&events)).expect("parses");
        assert_eq!(log.startup_locality, 3);
        assert_eq!(log.events.len(), 3);
        let mut pcr0 = [0u8; 32];
        pcr0[31] = 3;
        let pcr0 = extend(&extend(&pcr0, &[1; 32]), &[3; 32]);
        let pcr7 = extend(&[0; 32], &[2; 32]);
        let replayed = log.replay();
        assert_eq!(replayed.get(&0), Some(&pcr0));
        assert_eq!(replayed.get(&7), Some(&pcr7));
        assert_eq!(replayed.len(), 2);
    }

    #[test]
    fn a_damaged_firmware_log_is_an_error_not_a_panic() {
        let log = synthetic_log(&[(0, 0x8, [1; 32])]);
        for cut in [0, 10, 40, log.len() - 5] {
            assert!(parse_firmware_log(&log[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_firmware_log(b"not a log at all, but long enough to read a header").is_err());
    }

    #[test]
    fn the_app_log_keeps_only_this_boots_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AppEventLog::new(dir.path().join("log.jsonl")).expect("boot id");
        let event = AppEvent {
            pcr: 23,
            event: "gateway-binary".into(),
            sha256: to_hex(&[7; 32]),
            detail: "/usr/bin/mcp-gateway".into(),
        };
        log.append(&event).expect("append");
        let mut old_boot = std::fs::read_to_string(log.path()).expect("read");
        old_boot = old_boot.replace(&log.boot_id, "00000000-0000-0000-0000-000000000000");
        std::fs::write(log.path(), format!("{old_boot}{{cut by a crash")).expect("write");
        assert!(log.read().expect("read").is_empty());
        log.append(&event).expect("append");
        assert_eq!(log.read().expect("read"), vec![event.clone()]);
        let replayed = replay_app(&[event]).expect("replays");
        assert_eq!(replayed[&23], extend(&[0; 32], &[7; 32]));
    }
}
