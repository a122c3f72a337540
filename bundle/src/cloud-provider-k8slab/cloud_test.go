package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cloudprovider "k8s.io/cloud-provider"
)

const labConfig = `
lab: single
region: single
nodes:
  - {name: cp1, address: 172.30.5.11, zone: zone-a}
  - {name: w1, address: 172.30.5.21, zone: zone-b}
`

func testCloud(t *testing.T) *Cloud {
	t.Helper()
	cloud, err := newCloud(strings.NewReader(labConfig))
	if err != nil {
		t.Fatal(err)
	}
	return cloud
}

func node(name, providerID string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{ProviderID: providerID}}
}

func TestTheRegisteredProviderReadsItsConfig(t *testing.T) {
	cloud, err := cloudprovider.GetCloudProvider(providerName, strings.NewReader(labConfig))
	if err != nil || cloud == nil || cloud.ProviderName() != "k8slab" {
		t.Fatalf("GetCloudProvider: %v, %v", cloud, err)
	}
	if _, ok := cloud.InstancesV2(); !ok {
		t.Error("InstancesV2 is declined")
	}
	if _, ok := cloud.LoadBalancer(); ok {
		t.Error("LoadBalancer is offered; MetalLB has that job")
	}
	if _, ok := cloud.Routes(); ok {
		t.Error("Routes is offered; the CNI has that job")
	}
	if _, err := cloudprovider.GetCloudProvider(providerName, nil); err == nil {
		t.Error("no cloud config was accepted")
	}
}

func TestBadConfigsAreRefused(t *testing.T) {
	for name, config := range map[string]string{
		"unknown field":     "lab: a\nregion: a\nzones: []\nnodes: [{name: n, address: 10.0.0.1, zone: z}]",
		"no nodes":          "lab: a\nregion: a\nnodes: []",
		"no region":         "lab: a\nnodes: [{name: n, address: 10.0.0.1, zone: z}]",
		"no zone":           "lab: a\nregion: a\nnodes: [{name: n, address: 10.0.0.1}]",
		"bad address":       "lab: a\nregion: a\nnodes: [{name: n, address: 10.0.0.300, zone: z}]",
		"name twice":        "lab: a\nregion: a\nnodes: [{name: n, address: 10.0.0.1, zone: z}, {name: n, address: 10.0.0.2, zone: z}]",
		"address twice":     "lab: a\nregion: a\nnodes: [{name: n, address: 10.0.0.1, zone: z}, {name: m, address: 10.0.0.1, zone: z}]",
		"not a config file": "- a list",
	} {
		if _, err := newCloud(strings.NewReader(config)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetadataComesFromTheSpec(t *testing.T) {
	cloud := testCloud(t)
	for _, n := range []*v1.Node{node("w1", ""), node("w1", "k8slab://single/w1")} {
		meta, err := cloud.InstanceMetadata(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		want := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "172.30.5.21"}, {Type: v1.NodeHostName, Address: "w1"}}
		if meta.ProviderID != "k8slab://single/w1" || meta.Zone != "zone-b" || meta.Region != "single" ||
			len(meta.NodeAddresses) != 2 || meta.NodeAddresses[0] != want[0] || meta.NodeAddresses[1] != want[1] {
			t.Errorf("metadata of %s (providerID %q): %+v", n.Name, n.Spec.ProviderID, meta)
		}
	}
	_, err := cloud.InstanceMetadata(context.Background(), node("w9", ""))
	if !errors.Is(err, cloudprovider.InstanceNotFound) {
		t.Errorf("a host the spec lacks: %v", err)
	}
}

func TestAHostRemovedFromTheSpecNoLongerExists(t *testing.T) {
	cloud := testCloud(t)
	cases := map[*v1.Node]bool{
		node("cp1", ""):                   true,
		node("w1", "k8slab://single/w1"):  true,
		node("w2", "k8slab://single/w2"):  false,
		node("old", "k8slab://single/w1"): true, // the providerID names the host
	}
	for n, want := range cases {
		got, err := cloud.InstanceExists(context.Background(), n)
		if err != nil || got != want {
			t.Errorf("InstanceExists(%s, %q) = %v, %v; want %v", n.Name, n.Spec.ProviderID, got, err, want)
		}
	}
	// A Node never initialised that the spec does not name yet (a host joining before its
	// cloud config) is not said to be gone, nor another lab's or another cloud's: that
	// would delete it.
	if _, err := cloud.InstanceExists(context.Background(), node("w2", "")); err == nil {
		t.Error("an uninitialised Node the spec lacks: no error")
	}
	for _, id := range []string{"k8slab://other/w1", "aws:///us-east-1a/i-0123", "k8slab://single/", "k8slab://single/a/b"} {
		if _, err := cloud.InstanceExists(context.Background(), node("w1", id)); err == nil {
			t.Errorf("providerID %q: no error", id)
		}
	}
}

func TestAHostIsShutDownWhenItsAddressAnswersNothing(t *testing.T) {
	cloud := testCloud(t)
	for answer, want := range map[error]bool{
		nil:                  false, // the kubelet accepts
		syscall.ECONNREFUSED: false, // the machine is on, its kubelet is not
		syscall.EHOSTUNREACH: true,  // no machine at the address (its container stopped)
		syscall.ETIMEDOUT:    true,
	} {
		var dialled string
		cloud.dial = func(_ context.Context, _, address string) (net.Conn, error) {
			dialled = address
			if answer != nil {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: answer}
			}
			client, server := net.Pipe()
			server.Close()
			return client, nil
		}
		got, err := cloud.InstanceShutdown(context.Background(), node("w1", ""))
		if err != nil || got != want || dialled != "172.30.5.21:10250" {
			t.Errorf("dial answers %v: shutdown %v, %v (dialled %s); want %v", answer, got, err, dialled, want)
		}
	}
}

func TestAShutdownProbeOnARealSocket(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	cloud := testCloud(t)
	dialer := net.Dialer{}
	cloud.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, address)
	}
	if down, err := cloud.InstanceShutdown(context.Background(), node("cp1", "")); down || err != nil {
		t.Errorf("a listening port: shutdown %v, %v", down, err)
	}
	listener.Close()
	if down, err := cloud.InstanceShutdown(context.Background(), node("cp1", "")); down || err != nil {
		t.Errorf("a closed port (refused): shutdown %v, %v", down, err)
	}
}
