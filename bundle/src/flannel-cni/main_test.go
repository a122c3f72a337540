package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSubnetEnv(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDelegateIsABridgeOnTheNodesSubnet(t *testing.T) {
	path := writeSubnetEnv(t, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n"+
		"FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
	conf, err := loadConf([]byte(`{"cniVersion":"0.3.1","name":"cbr0","type":"flannel",
		"subnetFile":"` + path + `","delegate":{"hairpinMode":true,"isDefaultGateway":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	env, err := loadSubnetEnv(conf.SubnetFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := delegateConf(conf, env)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "bridge", "name": "cbr0", "cniVersion": "0.3.1", "mtu": 1450.0,
		"ipMasq": false, "isGateway": true, "hairpinMode": true, "isDefaultGateway": true,
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	ipam, _ := json.Marshal(d["ipam"])
	// host-local refuses a range with host bits set, so the gateway address is masked.
	if got := string(ipam); got != `{"ranges":[[{"subnet":"10.244.1.0/24"}]],`+
		`"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"}` {
		t.Errorf("ipam = %s", got)
	}
}

func TestAnIncompleteSubnetFileIsRefused(t *testing.T) {
	if _, err := loadSubnetEnv(writeSubnetEnv(t, "FLANNEL_NETWORK=10.244.0.0/16\n")); err == nil {
		t.Fatal("a subnet file without FLANNEL_SUBNET was accepted")
	}
}

func TestAMissingSubnetFileSaysFlanneldMayNotRun(t *testing.T) {
	_, err := loadSubnetEnv(filepath.Join(t.TempDir(), "absent"))
	if err == nil || !strings.Contains(err.Error(), "is flanneld running?") {
		t.Fatalf("err = %v", err)
	}
}
