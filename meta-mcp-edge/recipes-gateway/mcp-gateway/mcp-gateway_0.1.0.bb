# nooelint: oelint.var.bbclassextend - a device daemon; nothing builds with it on the host
SUMMARY = "mcp-edge: a hardened MCP gateway for edge Linux devices"
SUMMARY:${PN}-data = "mcp-edge data partition: /data, /etc and /var overlays at boot"
SUMMARY:${PN}-ota = "A/B update glue for mcp-gateway: mark-good, RAUC boot backend"
DESCRIPTION = "mcp-gateway federates upstream MCP servers, exposes the device's own tools, \
               runs a local model with cloud fallback, queues requests durably while offline \
               and measures itself into the TPM."
HOMEPAGE = "https://github.com/mcp-edge/mcp-edge"
BUGTRACKER = "https://github.com/mcp-edge/mcp-edge/issues"
SECTION = "net"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# The cargo features are chosen here, one PACKAGECONFIG option per feature
# (docs/FEATURES.md), not left to the crate's defaults. tpm: tss-esapi links the TPM Software
# Stack (libtss2-esys, -mu, -tctildr) from meta-tpm. local-model: candle and tokenizers, pure
# Rust crates from the crate list. compression: zstd, whose C library zstd-sys builds from the
# crate. tls: rustls with ring (its C and assembly built from the crate) for https:// on the
# listener and to the cloud, upstreams, telemetry and the OAuth key set.
PACKAGECONFIG ??= "tpm local-model compression tls"
PACKAGECONFIG[tpm] = ",,tpm2-tss"
PACKAGECONFIG[local-model] = ",,"
PACKAGECONFIG[compression] = ",,"
PACKAGECONFIG[tls] = ",,"
CARGO_BUILD_FLAGS:append = " --no-default-features --features '${PACKAGECONFIG}'"

CVE_PRODUCT = "mcp-edge"

# The source is the checkout that holds this layer (MCP_EDGE_SRCDIR, set in layer.conf), so
# the gateway, its units (systemd/) and its configuration (rootfs-overlay/) come from one
# commit and exist once. externalsrc keeps the crate:// entries of mcp-gateway-crates.inc:
# bitbake fetches and checks every crate, cargo builds offline. The recipe's version is the
# workspace's (Cargo.toml; tests/layers checks the file name).
EXTERNALSRC = "${MCP_EDGE_SRCDIR}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"

require ${BPN}-crates.inc

inherit externalsrc cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The workspace also holds the portable core and the model kernels (core/, kernels/: path
# dependencies the gateway builds with) and a test-only crate: build the gateway's package
# alone, with the workspace's lock file.
CARGO_SRC_DIR = "gateway"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}/mcp-gateway.service.d
    for unit in mcp-gateway.service mcp-gateway.socket mcp-gateway-cpufreq.path mcp-gateway-cpufreq.service; do
        install -m 0644 ${S}/systemd/$unit ${D}${systemd_system_unitdir}/$unit
    done
    install -m 0644 ${S}/systemd/mcp-gateway-tpm.conf ${D}${systemd_system_unitdir}/mcp-gateway.service.d/tpm.conf

    install -D -m 0644 ${S}/rootfs-overlay/etc/mcp/mcp-edge.toml ${D}${sysconfdir}/mcp/mcp-edge.toml
    install -D -m 0644 ${S}/rootfs-overlay/usr/lib/sysusers.d/mcp-edge.conf ${D}${nonarch_libdir}/sysusers.d/mcp-edge.conf
    install -D -m 0644 ${S}/rootfs-overlay/usr/lib/sysctl.d/60-mcp-edge.conf ${D}${nonarch_libdir}/sysctl.d/60-mcp-edge.conf
    install -D -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/journald.conf.d/60-mcp-edge.conf \
        ${D}${nonarch_libdir}/systemd/journald.conf.d/60-mcp-edge.conf

    # mcp-gateway-data: /data and the /etc and /var overlays before systemd starts (the
    # kernel runs it as init=). mcp-gateway-ota: mark-good once the gateway is healthy, the
    # RAUC backend for systemd-boot, and the D-Bus policy that lets only root drive RAUC
    # (docs/OTA.md).
    install -m 0644 ${S}/systemd/mcp-gateway-mark-good.service ${D}${systemd_system_unitdir}/
    for tool in data-init mark-good rauc-systemd-boot; do
        install -D -m 0755 ${S}/rootfs-overlay/usr/lib/mcp-edge/$tool ${D}${nonarch_libdir}/mcp-edge/$tool
    done
    install -D -m 0644 ${S}/rootfs-overlay/etc/dbus-1/system.d/mcp-edge-rauc.conf \
        ${D}${sysconfdir}/dbus-1/system.d/mcp-edge-rauc.conf
}

PACKAGE_BEFORE_PN = "${PN}-data ${PN}-ota"

FILES:${PN} += "${systemd_system_unitdir}/mcp-gateway.service.d \
                ${nonarch_libdir}/sysusers.d \
                ${nonarch_libdir}/sysctl.d \
                ${nonarch_libdir}/systemd/journald.conf.d"
FILES:${PN}-data += "${nonarch_libdir}/mcp-edge/data-init"
FILES:${PN}-ota += "${systemd_system_unitdir}/mcp-gateway-mark-good.service \
                    ${nonarch_libdir}/mcp-edge/mark-good \
                    ${nonarch_libdir}/mcp-edge/rauc-systemd-boot \
                    ${sysconfdir}/dbus-1/system.d/mcp-edge-rauc.conf"

CONFFILES:${PN} = "${sysconfdir}/mcp/mcp-edge.toml"

# The TPM's device TCTI is loaded at run time (libtss2-tctildr), not linked.
RDEPENDS:${PN} += "libtss2-tcti-device"
RDEPENDS:${PN}-data += "e2fsprogs-e2fsck util-linux-blkid util-linux-mount"
RDEPENDS:${PN}-ota += "${PN} ${PN}-data bash"

SYSTEMD_PACKAGES = "${PN} ${PN}-ota"
SYSTEMD_SERVICE:${PN} = "mcp-gateway.socket mcp-gateway.service mcp-gateway-cpufreq.path"
SYSTEMD_SERVICE:${PN}-ota = "mcp-gateway-mark-good.service"

# The static system user the units run as (usr/lib/sysusers.d/mcp-edge.conf says the same;
# oe-core's systemd_sysusers_check compares them): the D-Bus daemon refuses systemd's dynamic
# users, and the gateway asks RAUC for the update status over D-Bus.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /sbin/nologin \
                       --user-group --comment 'mcp-edge gateway' mcp-gateway"
