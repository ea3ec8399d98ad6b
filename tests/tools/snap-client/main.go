// snap-client speaks containerd's Snapshots API straight to a proxy snapshotter's socket, through
// containerd's own proxy client (snapshots/proxy), without containerd in between:
//
//	snap-client -socket SOCK prepare KEY PARENT [LABEL=VALUE...]   prints "prepared", "exists"
//	snap-client -socket SOCK list                                  name kind parent labels, one a line
//	snap-client -socket SOCK cleanup
//
// Built by tests/lib/services.sh (ep_build_go_tool) in GOPATH mode against Debian's
// golang-github-containerd-containerd-dev. Exit status 1 on an error, with its gRPC code.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"google.golang.org/grpc"
)

func main() {
	sock := flag.String("socket", "", "the snapshotter's unix socket")
	timeout := flag.Duration("timeout", 5*time.Minute, "overall timeout")
	flag.Parse()
	if *sock == "" || flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: snap-client -socket SOCK prepare|list|cleanup ...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), *timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, dialer.DialAddress(*sock), grpc.WithInsecure(),
		grpc.WithBlock(), grpc.WithContextDialer(dialer.ContextDialer))
	if err == nil {
		defer conn.Close()
		err = run(ctx, proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "edgepull"), flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "snap-client:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, sn snapshots.Snapshotter, args []string) error {
	switch args[0] {
	case "prepare":
		if len(args) < 3 {
			return fmt.Errorf("prepare KEY PARENT [LABEL=VALUE...]")
		}
		labels := map[string]string{}
		for _, kv := range args[3:] {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = v
		}
		_, err := sn.Prepare(ctx, args[1], args[2], snapshots.WithLabels(labels))
		if errdefs.IsAlreadyExists(err) {
			fmt.Println("exists")
			return nil
		}
		if err == nil {
			fmt.Println("prepared")
		}
		return err
	case "list":
		return sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error {
			keys := make([]string, 0, len(i.Labels))
			for k, v := range i.Labels {
				keys = append(keys, k+"="+v)
			}
			sort.Strings(keys)
			fmt.Printf("%s %s %q %s\n", i.Name, i.Kind, i.Parent, strings.Join(keys, ","))
			return nil
		})
	case "cleanup":
		c, ok := sn.(snapshots.Cleaner)
		if !ok {
			return fmt.Errorf("the proxy client has no Cleanup")
		}
		return c.Cleanup(ctx)
	}
	return fmt.Errorf("unknown command %s", args[0])
}
