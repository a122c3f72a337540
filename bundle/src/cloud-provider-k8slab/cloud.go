package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"sigs.k8s.io/yaml"
)

const (
	providerName = "k8slab"
	// The port every node's kubelet serves: a machine that is on answers there, with the
	// kubelet (connection accepted) or without it (connection refused).
	kubeletPort  = "10250"
	probeTimeout = 2 * time.Second
)

// Config is the cloud config file (--cloud-config) the cloud_provider role writes from the
// lab spec: the lab, its region, and every Kubernetes node with its address and zone.
type Config struct {
	Lab    string       `json:"lab"`
	Region string       `json:"region"`
	Nodes  []NodeConfig `json:"nodes"`
}

// NodeConfig is one lab host as the spec declares it.
type NodeConfig struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Zone    string `json:"zone"`
}

// Cloud is the lab seen as a cloud: InstancesV2 only. LoadBalancer Services are MetalLB's
// job in a lab, routes between nodes the CNI's, so those interfaces are declined.
type Cloud struct {
	config Config
	nodes  map[string]NodeConfig
	// dial reaches a node's address; tests replace it.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func init() {
	cloudprovider.RegisterCloudProvider(providerName, func(r io.Reader) (cloudprovider.Interface, error) {
		if r == nil {
			return nil, errors.New("no cloud config: pass --cloud-config=FILE")
		}
		return newCloud(r)
	})
}

// newCloud reads a config, refusing unknown fields, a node without an address or zone, and
// a name or address given twice.
func newCloud(r io.Reader) (*Cloud, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading the cloud config: %w", err)
	}
	var config Config
	if err := yaml.UnmarshalStrict(data, &config); err != nil {
		return nil, fmt.Errorf("the cloud config: %w", err)
	}
	if config.Lab == "" || config.Region == "" || len(config.Nodes) == 0 {
		return nil, errors.New("the cloud config needs lab, region and nodes")
	}
	nodes := map[string]NodeConfig{}
	addresses := map[netip.Addr]string{}
	for i, node := range config.Nodes {
		address, err := netip.ParseAddr(node.Address)
		if node.Name == "" || node.Zone == "" || err != nil {
			return nil, fmt.Errorf("the cloud config: nodes[%d] needs a name, an IP address and a zone", i)
		}
		if _, seen := nodes[node.Name]; seen {
			return nil, fmt.Errorf("the cloud config: node %q is listed twice", node.Name)
		}
		if other, seen := addresses[address]; seen {
			return nil, fmt.Errorf("the cloud config: nodes %q and %q have one address", other, node.Name)
		}
		nodes[node.Name] = node
		addresses[address] = node.Name
	}
	dialer := &net.Dialer{Timeout: probeTimeout}
	return &Cloud{config: config, nodes: nodes, dial: dialer.DialContext}, nil
}

// ProviderID is what the cloud calls a node: k8slab://<lab>/<host>.
func (c *Cloud) ProviderID(name string) string {
	return fmt.Sprintf("%s://%s/%s", providerName, c.config.Lab, name)
}

// find is the lab host a Node is: by its providerID when it has one, else by its name.
// ok is false when the lab has no such host; an error, for a providerID that is not this
// lab's (a cloud never says another cloud's machine is gone).
func (c *Cloud) find(node *v1.Node) (NodeConfig, bool, error) {
	name := node.Name
	if id := node.Spec.ProviderID; id != "" {
		prefix := fmt.Sprintf("%s://%s/", providerName, c.config.Lab)
		host, found := strings.CutPrefix(id, prefix)
		if !found || host == "" || strings.Contains(host, "/") {
			return NodeConfig{}, false, fmt.Errorf("node %s: providerID %q is not a host of lab %s (%s<host>)",
				node.Name, id, c.config.Lab, prefix)
		}
		name = host
	}
	host, ok := c.nodes[name]
	return host, ok, nil
}

// InstanceExists: the spec names the host. A host removed from the spec is gone, and the
// node lifecycle controller deletes its Node once it is not Ready. A Node this cloud never
// initialised (no providerID) that the spec does not name yet is not judged: it is a host
// joining before the cloud config that names it has been applied, and it waits under the
// uninitialized taint instead of being deleted.
func (c *Cloud) InstanceExists(ctx context.Context, node *v1.Node) (bool, error) {
	_, ok, err := c.find(node)
	if err == nil && !ok && node.Spec.ProviderID == "" {
		return false, fmt.Errorf("node %s has no providerID and is not a host of lab %s yet", node.Name, c.config.Lab)
	}
	return ok, err
}

// InstanceShutdown: the host is off when its address answers nothing, not even a refusal,
// on the kubelet's port. A host that is on refuses or accepts the connection whatever
// state its kubelet is in; that a kubelet is down is the Ready condition's business.
func (c *Cloud) InstanceShutdown(ctx context.Context, node *v1.Node) (bool, error) {
	host, ok, err := c.find(node)
	if err != nil || !ok {
		return false, err
	}
	conn, err := c.dial(ctx, "tcp", net.JoinHostPort(host.Address, kubeletPort))
	if err == nil {
		conn.Close()
		return false, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return !errors.Is(err, syscall.ECONNREFUSED), nil
}

// InstanceMetadata: the providerID, the spec's address (InternalIP) and name (Hostname),
// zone and region.
func (c *Cloud) InstanceMetadata(ctx context.Context, node *v1.Node) (*cloudprovider.InstanceMetadata, error) {
	host, ok, err := c.find(node)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("node %s is not a host of lab %s: %w", node.Name, c.config.Lab,
			cloudprovider.InstanceNotFound)
	}
	return &cloudprovider.InstanceMetadata{
		ProviderID: c.ProviderID(host.Name),
		NodeAddresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: host.Address},
			{Type: v1.NodeHostName, Address: host.Name},
		},
		Zone:   host.Zone,
		Region: c.config.Region,
	}, nil
}

// Initialize starts nothing: the cloud is a file.
func (c *Cloud) Initialize(cloudprovider.ControllerClientBuilder, <-chan struct{}) {}

func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool)   { return c, true }
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) { return nil, false }
func (c *Cloud) Instances() (cloudprovider.Instances, bool)       { return nil, false }
func (c *Cloud) Zones() (cloudprovider.Zones, bool)               { return nil, false }
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool)         { return nil, false }
func (c *Cloud) Routes() (cloudprovider.Routes, bool)             { return nil, false }
func (c *Cloud) ProviderName() string                             { return providerName }

// HasClusterID: the lab's name is the cluster's ID (in every providerID).
func (c *Cloud) HasClusterID() bool { return true }
