package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Sink is where the writer puts batches of encoded events. Each Write carries whole lines;
// Sync must not return until everything written so far is on stable storage. *os.File is a
// Sink, so tests can hand in a real file and make it fail (for example by closing it).
type Sink interface {
	io.Writer
	Sync() error
	io.Closer
}

// StdoutPath selects standard output as the sink.
const StdoutPath = "-"

// defaultMaxSizeMB is lumberjack's own default, stated here so Config can document it.
const defaultMaxSizeMB = 100

// Config chooses and tunes the sink. It mirrors kube-apiserver's --audit-log-path,
// --audit-log-maxsize, --audit-log-maxage and --audit-log-maxbackup.
type Config struct {
	// Path is StdoutPath ("-") for standard output, otherwise the audit file. Required.
	Path string
	// MaxSizeMB is the size in megabytes at which the file is rotated. Default 100.
	MaxSizeMB int
	// MaxAgeDays is how long rotated files are kept, in days. Default 0: no age limit.
	MaxAgeDays int
	// MaxBackups is how many rotated files are kept. Default 0: all of them (up to MaxAgeDays).
	MaxBackups int
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var problems []string
	if strings.TrimSpace(c.Path) == "" {
		problems = append(problems, `audit log path is empty: want "-" or a file path`)
	}
	for _, f := range []struct {
		name  string
		value int
	}{
		{"audit log max size (MB)", c.MaxSizeMB},
		{"audit log max age (days)", c.MaxAgeDays},
		{"audit log max backups", c.MaxBackups},
	} {
		if f.value < 0 {
			problems = append(problems, fmt.Sprintf("%s is %d: must be 0 or more", f.name, f.value))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid audit config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// OpenSink opens the sink cfg names, without validating cfg (Open does both).
func OpenSink(cfg Config) (Sink, error) {
	if cfg.Path == StdoutPath {
		return &streamSink{file: os.Stdout}, nil
	}
	return openFileSink(cfg)
}

// streamSink writes to a stream such as standard output. Pipes and terminals cannot be
// fsynced (Linux answers EINVAL), so for them a sync that is not supported counts as done:
// whatever reads the stream owns durability from there, and Open says so in the operational
// log. Standard output redirected to a regular file is fsynced like any file.
type streamSink struct {
	file *os.File
}

// syncable reports whether Sync reaches stable storage: only for a regular file.
func (s *streamSink) syncable() bool {
	info, err := s.file.Stat()
	return err == nil && info.Mode().IsRegular()
}

// kind names what the stream is, for the start-up warning.
func (s *streamSink) kind() string {
	info, err := s.file.Stat()
	switch {
	case err != nil:
		return "unknown"
	case info.Mode()&os.ModeNamedPipe != 0:
		return "pipe"
	case info.Mode()&os.ModeSocket != 0:
		return "socket"
	case info.Mode()&os.ModeCharDevice != 0:
		return "character device"
	case info.Mode().IsRegular():
		return "regular file"
	}
	return "other"
}

func (s *streamSink) Write(p []byte) (int, error) { return s.file.Write(p) }

func (s *streamSink) Sync() error {
	err := s.file.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}

// Close leaves the stream open: the process owns standard output.
func (s *streamSink) Close() error { return nil }

// fileSink writes through lumberjack, which rotates by size and prunes old files by age and
// count, but which has no Sync and keeps its *os.File private. Durability therefore rests on
// a second descriptor, held on the same inode, used only for fsync: fsync flushes an inode's
// data whichever descriptor it is called on.
//
// Why that stays correct across rotation: the writer hands lumberjack exactly one Write per
// batch, and lumberjack rotates at most once per Write, before writing. So a batch lands
// entirely in one file, and the previous batch was synced before this Write started. After
// each Write, Sync first fsyncs the held inode (the old file, if lumberjack rotated), then
// compares it with what the path names now; if they differ, the new file is opened, fsynced,
// and its directory fsynced so the rename and the new entry survive a crash too. lumberjack is
// then closed so it reopens the path: both descriptors name one inode again, even if something
// outside the gateway moved the file.
type fileSink struct {
	path    string
	rotator *lumberjack.Logger
	held    *os.File
}

func openFileSink(cfg Config) (*fileSink, error) {
	maxSize := cfg.MaxSizeMB
	if maxSize == 0 {
		maxSize = defaultMaxSizeMB
	}
	s := &fileSink{
		path: cfg.Path,
		rotator: &lumberjack.Logger{
			Filename:   cfg.Path,
			MaxSize:    maxSize,
			MaxAge:     cfg.MaxAgeDays,
			MaxBackups: cfg.MaxBackups,
		},
	}

	// lumberjack opens lazily; an empty write makes it create the file now, so a bad path
	// fails at start-up rather than on the first request.
	if _, err := s.rotator.Write(nil); err != nil {
		return nil, fmt.Errorf("open audit file %s: %w", cfg.Path, err)
	}
	if err := s.follow(); err != nil {
		_ = s.rotator.Close()
		return nil, fmt.Errorf("open audit file %s: %w", cfg.Path, err)
	}
	return s, nil
}

func (s *fileSink) Write(p []byte) (int, error) { return s.rotator.Write(p) }

func (s *fileSink) Sync() error {
	if err := s.held.Sync(); err != nil {
		return fmt.Errorf("sync audit file %s: %w", s.path, err)
	}
	return s.follow()
}

// follow makes held name the inode at path, syncing the new inode and its directory when it
// changed. A missing file is an error: events written to an unlinked inode are not on the
// trail. lumberjack is closed then too, so the next write recreates the file if it can.
func (s *fileSink) follow() error {
	info, err := os.Stat(s.path)
	if err != nil {
		_ = s.rotator.Close()
		return fmt.Errorf("check audit file: %w", err)
	}
	if s.held != nil {
		if heldInfo, err := s.held.Stat(); err == nil && os.SameFile(heldInfo, info) {
			return nil
		}
	}

	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open audit file for sync: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync audit file %s: %w", s.path, err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		_ = f.Close()
		return err
	}

	if s.held != nil {
		_ = s.held.Close()
		_ = s.rotator.Close()
	}
	s.held = f
	return nil
}

func (s *fileSink) Close() error {
	err := s.rotator.Close()
	if s.held != nil {
		err = errors.Join(err, s.held.Close())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open audit directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync audit directory %s: %w", dir, err)
	}
	return nil
}
