#
# SPDX-License-Identifier: Apache-2.0
#
# The checks of tests/image (the reference image's whole-image tests) for mcp-edge-image
# under oe-core's testimage: TEST_SUITES = "ping ssh mcp_edge" (docs/YOCTO.md).

import json

from oeqa.core.decorator.depends import OETestDepends
from oeqa.core.decorator.data import skipIfNotFeature
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage


class McpEdgeTest(OERuntimeTestCase):

    def run_ok(self, command):
        status, output = self.target.run(command)
        self.assertEqual(status, 0, '%s\n%s' % (command, output))
        return output

    def health(self):
        # GET /health on the loopback with bash's /dev/tcp (the image has no curl).
        output = self.run_ok("bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; "
                             "printf \"GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n\" >&3; "
                             "cat <&3'")
        head, _, body = output.partition('\r\n\r\n')
        return head.split('\r\n')[0], body

    @OETestDepends(['ssh.SSHTest.test_ssh'])
    @OEHasPackage(['mcp-gateway'])
    def test_gateway_is_healthy(self):
        self.run_ok('SYSTEMD_BUS_TIMEOUT=240s systemctl is-active mcp-gateway.service')
        status, body = self.health()
        self.assertIn('200', status, body)
        self.assertIn('version', json.loads(body))

    @OETestDepends(['mcp_edge.McpEdgeTest.test_gateway_is_healthy'])
    def test_gateway_runs_unprivileged(self):
        user = self.run_ok('stat -c %U /proc/$(pidof mcp-gateway)').strip()
        self.assertEqual(user, 'mcp-gateway')
        status = self.run_ok('grep -E "^(CapEff|NoNewPrivs)" /proc/$(pidof mcp-gateway)/status')
        self.assertIn('CapEff:\t0000000000000000', status)
        self.assertIn('NoNewPrivs:\t1', status)

    @OETestDepends(['ssh.SSHTest.test_ssh'])
    @skipIfNotFeature('read-only-rootfs', 'the image has a writable root')
    def test_root_is_read_only(self):
        status, output = self.target.run('touch /usr/mcp-edge-write-test')
        self.assertNotEqual(status, 0, output)
        self.assertIn('Read-only file system', output)

    @OETestDepends(['mcp_edge.McpEdgeTest.test_gateway_is_healthy'])
    @OEHasPackage(['mcp-gateway-data'])
    def test_state_is_on_the_data_partition(self):
        for directory in ('/etc', '/var'):
            options = self.run_ok('findmnt -n -o FSTYPE,OPTIONS %s' % directory)
            self.assertTrue(options.startswith('overlay'), options)
            self.assertIn('upperdir=/data/overlay%s/upper' % directory, options)
        files = self.run_ok('ls /data/overlay/var/upper/lib/private/mcp-edge')
        self.assertIn('tpm-measurements.jsonl', files)

    @OETestDepends(['mcp_edge.McpEdgeTest.test_state_is_on_the_data_partition'])
    @OEHasPackage(['rauc'])
    def test_rauc_knows_the_booted_slot(self):
        output = self.run_ok('rauc status --output-format=json')
        status = json.loads(output)
        self.assertEqual(status['booted'], 'a', output)
        self.run_ok('SYSTEMD_BUS_TIMEOUT=240s systemctl is-active mcp-gateway-mark-good.service')
