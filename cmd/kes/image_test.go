// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
)

// TestContainerImage builds the image of Containerfile with
// scripts/image.sh and starts a development server in it. It needs
// podman that can run containers here (KES_TEST_IMAGE=1 to opt in: the
// build takes a while); it says why it skips otherwise.
func TestContainerImage(t *testing.T) {
	if os.Getenv("KES_TEST_IMAGE") == "" {
		t.Skip("set KES_TEST_IMAGE=1 to build and start the container image")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (Debian: apt-get install podman)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// podman info fails where podman cannot work at all (no user
	// namespaces for a rootless user, no storage driver).
	if out, err := exec.CommandContext(ctx, podman, "info").CombinedOutput(); err != nil {
		t.Skipf("podman does not work here: %s", firstLine(out))
	}
	// Running a command that does not exist in an empty image tells,
	// before the long build, whether podman can start a container here:
	// "not found" means it could; anything else (crun refused to set
	// resource limits, no user namespaces, no cgroups) means it cannot.
	empty := filepath.Join(t.TempDir(), "empty.tar")
	if out, err := exec.CommandContext(ctx, "tar", "cf", empty, "--files-from", "/dev/null").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	const probe = "localhost/kes-probe:empty"
	if out, err := exec.CommandContext(ctx, podman, "import", "-q", empty, probe).CombinedOutput(); err != nil {
		t.Skipf("podman cannot import an image here: %s", firstLine(out))
	}
	defer exec.Command(podman, "rmi", "-f", probe).Run()
	out, _ := exec.CommandContext(ctx, podman, "run", "--rm", "--network=none", probe, "/nothing").CombinedOutput()
	if !strings.Contains(string(out), "not found") && !strings.Contains(string(out), "no such file") {
		t.Skipf("podman cannot start containers here: %s", firstLine(out))
	}

	const image = "localhost/kes:test"
	build := exec.CommandContext(ctx, "../../scripts/image.sh", image)
	build.Env = append(os.Environ(), "GO="+goBinary())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", image).Run() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	name := "kes-test-" + strings.ReplaceAll(addr, ":", "-")
	run := exec.CommandContext(ctx, podman, "run", "-d", "--rm", "--name", name, "--network=host", image, "server", "--dev", "--addr", addr)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rm", "-f", name).Run() })

	// The dev server requires a client certificate: the API key it
	// prints is one. Then /v1/status must answer, from inside the image.
	keyRE := regexp.MustCompile(`kes:v1:[A-Za-z0-9+/=]+`)
	var client *http.Client
	for {
		logs, _ := exec.Command(podman, "logs", name).CombinedOutput()
		if k := keyRE.Find(logs); k != nil && client == nil {
			key, err := kes.ParseAPIKey(string(k))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := kes.GenerateCertificate(key)
			if err != nil {
				t.Fatal(err)
			}
			client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				// The dev server's certificate is self-signed and new on
				// every start.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}},
			}}
		}
		if client != nil {
			resp, err := client.Get("https://" + addr + "/v1/status")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the server in the container never answered:\n%s", logs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// goBinary is the go command that runs this test.
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
