################################################################################
#
# mcp-gateway
#
################################################################################

# The release of this checkout: the version is the workspace's (Cargo.toml), and the hash is
# that of the vendored tarball Buildroot makes from the release's source
# (scripts/buildroot-tarball.sh makes the same tarball from a checkout; docs/BUILDROOT.md).
MCP_GATEWAY_VERSION = 0.1.0
MCP_GATEWAY_SITE = $(call github,mcp-edge,mcp-edge,v$(MCP_GATEWAY_VERSION))
MCP_GATEWAY_LICENSE = Apache-2.0
MCP_GATEWAY_LICENSE_FILES = LICENSE
MCP_GATEWAY_SUBDIR = gateway
MCP_GATEWAY_DEPENDENCIES = host-pkgconf

# The cargo features are chosen here, not left to the crate's defaults (docs/FEATURES.md);
# cargo install builds again, so it is given the same ones.
MCP_GATEWAY_FEATURES =
MCP_GATEWAY_CARGO_BUILD_OPTS = --no-default-features --features "$(MCP_GATEWAY_FEATURES)"
MCP_GATEWAY_CARGO_INSTALL_OPTS = $(MCP_GATEWAY_CARGO_BUILD_OPTS)

ifeq ($(BR2_PACKAGE_MCP_GATEWAY_TPM),y)
MCP_GATEWAY_FEATURES += tpm
MCP_GATEWAY_DEPENDENCIES += tpm2-tss
# tss-esapi finds libtss2 through pkg-config, which the crate refuses to use for another
# target unless told to.
MCP_GATEWAY_CARGO_ENV = PKG_CONFIG_ALLOW_CROSS=1
endif

ifeq ($(BR2_PACKAGE_MCP_GATEWAY_LOCAL_MODEL),y)
MCP_GATEWAY_FEATURES += local-model
endif

ifeq ($(BR2_PACKAGE_MCP_GATEWAY_COMPRESSION),y)
MCP_GATEWAY_FEATURES += compression
endif

ifeq ($(BR2_PACKAGE_MCP_GATEWAY_TLS),y)
MCP_GATEWAY_FEATURES += tls
endif

# The units, the configuration and the tools come from the release's systemd/ and
# rootfs-overlay/: the one copy every image flavour installs.
define MCP_GATEWAY_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/etc/mcp/mcp-edge.toml \
		$(TARGET_DIR)/etc/mcp/mcp-edge.toml
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/usr/lib/sysctl.d/60-mcp-edge.conf \
		$(TARGET_DIR)/usr/lib/sysctl.d/60-mcp-edge.conf
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/usr/lib/systemd/journald.conf.d/60-mcp-edge.conf \
		$(TARGET_DIR)/usr/lib/systemd/journald.conf.d/60-mcp-edge.conf
endef
MCP_GATEWAY_POST_INSTALL_TARGET_HOOKS += MCP_GATEWAY_INSTALL_CONFIG

MCP_GATEWAY_UNITS = \
	mcp-gateway.socket \
	mcp-gateway.service \
	mcp-gateway-cpufreq.path \
	mcp-gateway-cpufreq.service

# The read-only root's fstab (the data partition, the ESP, /tmp) and the pre-init that mounts
# /data and the /etc and /var overlays.
ifeq ($(BR2_PACKAGE_MCP_GATEWAY_DATA_PARTITION),y)
define MCP_GATEWAY_INSTALL_DATA_INIT
	$(INSTALL) -D -m 0755 $(@D)/rootfs-overlay/usr/lib/mcp-edge/data-init \
		$(TARGET_DIR)/usr/lib/mcp-edge/data-init
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/etc/fstab $(TARGET_DIR)/etc/fstab
	mkdir -p $(TARGET_DIR)/data $(TARGET_DIR)/boot/efi
endef
MCP_GATEWAY_POST_INSTALL_TARGET_HOOKS += MCP_GATEWAY_INSTALL_DATA_INIT
endif

ifeq ($(BR2_PACKAGE_MCP_GATEWAY_OTA),y)
MCP_GATEWAY_UNITS += mcp-gateway-mark-good.service
MCP_GATEWAY_RAUC_KEYRING = $(call qstrip,$(BR2_PACKAGE_MCP_GATEWAY_RAUC_KEYRING))
MCP_GATEWAY_RAUC_COMPATIBLE = $(call qstrip,$(BR2_PACKAGE_MCP_GATEWAY_RAUC_COMPATIBLE))

ifeq ($(BR_BUILDING),y)
ifeq ($(MCP_GATEWAY_RAUC_KEYRING),)
$(error BR2_PACKAGE_MCP_GATEWAY_RAUC_KEYRING is empty: set it to the CA certificate your bundles are signed under (docs/OTA.md, qemu/ota-keys.sh))
endif
endif

define MCP_GATEWAY_INSTALL_OTA
	$(INSTALL) -D -m 0755 $(@D)/rootfs-overlay/usr/lib/mcp-edge/mark-good \
		$(TARGET_DIR)/usr/lib/mcp-edge/mark-good
	$(INSTALL) -D -m 0755 $(@D)/rootfs-overlay/usr/lib/mcp-edge/rauc-systemd-boot \
		$(TARGET_DIR)/usr/lib/mcp-edge/rauc-systemd-boot
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/etc/dbus-1/system.d/mcp-edge-rauc.conf \
		$(TARGET_DIR)/etc/dbus-1/system.d/mcp-edge-rauc.conf
	$(INSTALL) -D -m 0644 $(MCP_GATEWAY_RAUC_KEYRING) $(TARGET_DIR)/etc/rauc/keyring.pem
	sed -e 's|@COMPATIBLE@|$(MCP_GATEWAY_RAUC_COMPATIBLE)|' \
		-e 's|@KEYRING@|/etc/rauc/keyring.pem|' \
		$(@D)/rauc/system.conf.in >$(TARGET_DIR)/etc/rauc/system.conf
endef
MCP_GATEWAY_POST_INSTALL_TARGET_HOOKS += MCP_GATEWAY_INSTALL_OTA

# The RAUC backend is the one writer of boot counters: systemd's own blessing would mark a
# slot good without asking whether the gateway is healthy.
define MCP_GATEWAY_MASK_BLESS_BOOT
	mkdir -p $(TARGET_DIR)/etc/systemd/system
	ln -sf /dev/null $(TARGET_DIR)/etc/systemd/system/systemd-bless-boot.service
endef
MCP_GATEWAY_POST_INSTALL_TARGET_HOOKS += MCP_GATEWAY_MASK_BLESS_BOOT
endif

# Installed and enabled through a preset, which Buildroot applies with systemctl preset-all.
define MCP_GATEWAY_INSTALL_INIT_SYSTEMD
	$(foreach unit,$(MCP_GATEWAY_UNITS),
		$(INSTALL) -D -m 0644 $(@D)/systemd/$(unit) \
			$(TARGET_DIR)/usr/lib/systemd/system/$(unit)$(sep))
	$(INSTALL) -D -m 0644 $(@D)/systemd/mcp-gateway-tpm.conf \
		$(TARGET_DIR)/usr/lib/systemd/system/mcp-gateway.service.d/tpm.conf
	mkdir -p $(TARGET_DIR)/usr/lib/systemd/system-preset
	printf 'enable %s\n' $(filter-out mcp-gateway-cpufreq.service,$(MCP_GATEWAY_UNITS)) \
		>$(TARGET_DIR)/usr/lib/systemd/system-preset/50-mcp-gateway.preset
endef

# The static system user the units run as (rootfs-overlay/usr/lib/sysusers.d/mcp-edge.conf
# says the same): the D-Bus daemon refuses systemd's dynamic users, and the gateway asks RAUC
# for the update status over D-Bus.
define MCP_GATEWAY_USERS
	mcp-gateway -1 mcp-gateway -1 * - - - mcp-edge gateway
endef

$(eval $(cargo-package))
