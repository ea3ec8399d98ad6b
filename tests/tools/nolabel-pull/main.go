// nolabel-pull pulls an image through containerd with the client's own unpacker and no
// remote-snapshotter labels of CRI: Prepare carries only containerd.io/snapshot.ref=<chainID>.
// This is how CRI 1.6 pulls with its default disable_snapshot_annotations = true, and how
// nerdctl and client.Pull(…, WithPullUnpack) users pull. (ctr images pull is no such client:
// in 1.6 it fetches every blob first and unpacks after, with no label at all.) Then it tells
// how many layers containerd fetched into its content store and how many it skipped.
//
//	nolabel-pull -address SOCK -snapshotter NAME [-hosts-dir DIR] [-namespace NS] REF
//
// Built by tests/lib/services.sh (ep_build_go_tool) in GOPATH mode against Debian's
// golang-github-containerd-containerd-dev, as ../shared/tools/containerd-conformance builds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/platforms"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd socket")
	ns := flag.String("namespace", "default", "containerd namespace")
	snapshotter := flag.String("snapshotter", "overlayfs", "snapshotter to unpack into")
	hostsDir := flag.String("hosts-dir", "", "containerd hosts directory (hosts.toml per registry)")
	timeout := flag.Duration("timeout", 5*time.Minute, "overall timeout")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nolabel-pull [flags] REF")
		os.Exit(2)
	}
	if err := run(*address, *ns, *snapshotter, *hostsDir, *timeout, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "nolabel-pull:", err)
		os.Exit(1)
	}
}

func run(address, ns, snapshotter, hostsDir string, timeout time.Duration, ref string) error {
	client, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), timeout)
	defer cancel()
	hostOpts := config.HostOptions{}
	if hostsDir != "" {
		hostOpts.HostDir = config.HostDirFromRoot(hostsDir)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, hostOpts)})
	img, err := client.Pull(ctx, ref, containerd.WithResolver(resolver),
		containerd.WithPullSnapshotter(snapshotter), containerd.WithPullUnpack)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	cs := client.ContentStore()
	manifest, err := images.Manifest(ctx, cs, img.Target(), platforms.Default())
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	fetched := 0
	for _, layer := range manifest.Layers {
		if _, err := cs.Info(ctx, layer.Digest); err == nil {
			fetched++
		} else if !errdefs.IsNotFound(err) {
			return fmt.Errorf("content info %s: %w", layer.Digest, err)
		}
	}
	unpacked, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return fmt.Errorf("is unpacked: %w", err)
	}
	fmt.Printf("layers: %d, fetched: %d, skipped: %d, unpacked in %s: %v\n",
		len(manifest.Layers), fetched, len(manifest.Layers)-fetched, snapshotter, unpacked)
	if !unpacked {
		return fmt.Errorf("image is not unpacked in %s", snapshotter)
	}
	return nil
}
