// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// errNotRegular is returned for a config-referenced path that is not a
// regular file.
var errNotRegular = errors.New("not a regular file")

// readConfigFile reads a file that the config names (a certificate,
// key or CA file) and fails instead of blocking or reading without end.
// The file is opened with O_NONBLOCK, so that opening a FIFO without a
// writer returns at once instead of hanging start-up (and every signal
// handler waiting for it), and it must then be a regular file: a FIFO,
// socket or device such as /dev/zero is refused before anything is
// read. At most limit bytes are accepted.
func readConfigFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("'%s' is %w", path, errNotRegular)
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("'%s' is too large (more than %d bytes)", path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // the file grew while it was read
		return nil, fmt.Errorf("'%s' is too large (more than %d bytes)", path, limit)
	}
	return b, nil
}

// checkPath is the load-time check of a path that the config names:
// something that exists there must be a regular file (or, with dirOK, a
// directory). A missing file is left to start-up, which reports it when
// it reads the file, so that a config can be checked on another machine.
// Stat never blocks, not even on a FIFO.
func checkPath(field, path string, dirOK bool) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return invalid("%s: %v", field, err)
	case info.Mode().IsRegular(), dirOK && info.IsDir():
		return nil
	case dirOK:
		return invalid("%s: '%s' is neither a regular file nor a directory", field, path)
	default:
		return invalid("%s: '%s' is not a regular file", field, path)
	}
}

// configReadTimeout bounds reading the config file from a pipe.
var configReadTimeout = 10 * time.Second

// readConfigSource reads the config file itself. Unlike the files the
// config names, it may be a pipe or FIFO (`kes server --config <(...)`),
// which the operator chose on the command line; such a read is bounded
// by configReadTimeout so that neither start-up nor a SIGHUP reload,
// which runs in the loop that also handles SIGTERM, can hang on it.
// Other non-regular files (devices, sockets) are refused.
func readConfigSource(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch mode := info.Mode(); {
	case mode.IsRegular():
	case mode&fs.ModeNamedPipe != 0:
		if err := f.SetReadDeadline(time.Now().Add(configReadTimeout)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("'%s' is neither a regular file nor a pipe", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("'%s' was not read within %v", path, configReadTimeout)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("'%s' is too large (more than %d bytes)", path, limit)
	}
	return b, nil
}
