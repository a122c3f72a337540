// Command flannel is a CNI plugin for pods on a flannel network, written for k8slab
// because the Go module proxy does not serve flannel's own plugin.
//
// flanneld writes the node's share of the pod network to a subnet file; this plugin
// turns that into a bridge + host-local configuration and delegates to those plugins.
// The configuration used for a container is saved, so that DEL undoes exactly what ADD
// did even if the subnet file has changed or gone since.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Version is set at link time.
var Version = "unknown"

const (
	defaultSubnetFile = "/run/flannel/subnet.env"
	defaultDataDir    = "/var/lib/cni/flannel"
)

type netConf struct {
	types.NetConf
	SubnetFile string         `json:"subnetFile"`
	DataDir    string         `json:"dataDir"`
	Delegate   map[string]any `json:"delegate"`
}

type subnetEnv struct {
	network string
	subnet  string
	mtu     int
	ipMasq  bool
}

func loadConf(data []byte) (*netConf, error) {
	conf := &netConf{SubnetFile: defaultSubnetFile, DataDir: defaultDataDir}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, fmt.Errorf("parsing the network configuration: %w", err)
	}
	if conf.Delegate == nil {
		conf.Delegate = map[string]any{}
	}
	return conf, nil
}

func loadSubnetEnv(path string) (*subnetEnv, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading flanneld's subnet file (is flanneld running?): %w", err)
	}
	defer f.Close()
	env := &subnetEnv{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		key, value, found := strings.Cut(strings.TrimSpace(scanner.Text()), "=")
		if !found {
			continue
		}
		switch key {
		case "FLANNEL_NETWORK":
			env.network = value
		case "FLANNEL_SUBNET":
			// flanneld writes the gateway's address (10.244.1.1/24); host-local wants the
			// range itself and refuses a subnet with host bits set.
			_, subnet, err := net.ParseCIDR(value)
			if err != nil {
				return nil, fmt.Errorf("%s: FLANNEL_SUBNET=%q is not a CIDR", path, value)
			}
			env.subnet = subnet.String()
		case "FLANNEL_MTU":
			if env.mtu, err = strconv.Atoi(value); err != nil {
				return nil, fmt.Errorf("%s: FLANNEL_MTU=%q is not a number", path, value)
			}
		case "FLANNEL_IPMASQ":
			env.ipMasq = value == "true"
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if env.network == "" || env.subnet == "" || env.mtu == 0 {
		return nil, fmt.Errorf("%s lacks FLANNEL_NETWORK, FLANNEL_SUBNET or FLANNEL_MTU", path)
	}
	return env, nil
}

// delegateConf is the bridge configuration for this node's subnet; the user's "delegate"
// settings win over the defaults, except for the IPAM that the subnet dictates.
func delegateConf(conf *netConf, env *subnetEnv) ([]byte, error) {
	d := map[string]any{
		"type":      "bridge",
		"isGateway": true,
		// flanneld masquerades pod traffic itself when FLANNEL_IPMASQ is set.
		"ipMasq": !env.ipMasq,
		"mtu":    env.mtu,
	}
	for k, v := range conf.Delegate {
		d[k] = v
	}
	d["name"] = conf.Name
	d["cniVersion"] = conf.CNIVersion
	d["ipam"] = map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": env.subnet}}},
		"routes": []map[string]string{{"dst": env.network}},
	}
	return json.Marshal(d)
}

func savedPath(conf *netConf, containerID, ifName string) string {
	return filepath.Join(conf.DataDir, containerID+"-"+ifName)
}

func delegateType(saved []byte) (string, error) {
	var d struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(saved, &d); err != nil || d.Type == "" {
		return "", errors.New("the saved delegate configuration has no type")
	}
	return d.Type, nil
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := loadSubnetEnv(conf.SubnetFile)
	if err != nil {
		return err
	}
	d, err := delegateConf(conf, env)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(conf.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(savedPath(conf, args.ContainerID, args.IfName), d, 0o600); err != nil {
		return err
	}
	kind, err := delegateType(d)
	if err != nil {
		return err
	}
	result, err := invoke.DelegateAdd(context.TODO(), kind, d, nil)
	if err != nil {
		return err
	}
	return types.PrintResult(result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	path := savedPath(conf, args.ContainerID, args.IfName)
	d, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// Nothing was added, or DEL already ran: DEL must succeed when repeated.
		return nil
	}
	if err != nil {
		return err
	}
	kind, err := delegateType(d)
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.TODO(), kind, d, nil); err != nil {
		return err
	}
	return os.Remove(path)
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	d, err := os.ReadFile(savedPath(conf, args.ContainerID, args.IfName))
	if err != nil {
		return err
	}
	kind, err := delegateType(d)
	if err != nil {
		return err
	}
	return invoke.DelegateCheck(context.TODO(), kind, d, nil)
}

func main() {
	skel.PluginMainFuncs(
		skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.All,
		fmt.Sprintf("CNI flannel plugin %s (k8slab)", Version),
	)
}
