package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// layered fills the flags of fs that the command line left unset from the
// environment (CORFU_ and the flag's name in upper case, dashes as
// underscores: --log-level is CORFU_LOG_LEVEL) and then from a JSON config
// file, an object of flag names and values ({"log-level": "debug"}), named
// by the flag "config" if fs has one. The command line wins over the
// environment, and the environment over the file. getenv is os.Getenv
// outside tests.
func layered(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromFile := map[string]any{}
	if cf := fs.Lookup("config"); cf != nil {
		path := cf.Value.String()
		if !set["config"] {
			if v := getenv(envName("config")); v != "" {
				path = v
			}
		}
		if path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("config file: %w", err)
			}
			if err := json.Unmarshal(b, &fromFile); err != nil {
				return fmt.Errorf("config file %s: %v", path, err)
			}
			for name := range fromFile {
				if fs.Lookup(name) == nil || name == "config" {
					return fmt.Errorf("config file %s: unknown setting %q", path, name)
				}
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || f.Name == "config" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, serr)
			}
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			s := fmt.Sprint(v)
			if b, ok := v.(bool); ok {
				s = fmt.Sprint(b)
			}
			if serr := fs.Set(f.Name, s); serr != nil {
				err = fmt.Errorf("config setting %q=%v: %v", f.Name, v, serr)
			}
		}
	})
	return err
}

// envName is the environment variable of the flag name.
func envName(name string) string {
	return "CORFU_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags parses args into fs, fills the rest by layered, and reports
// problems on stderr. Flags may come before, between or after the
// positional arguments, which it returns (everything after "--" is
// positional). It returns the exit status to use (0 if parsing succeeded,
// 2 for bad flags) and whether the command should go on (false after -h).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (pos []string, status int, ok bool) {
	fs.SetOutput(stderr)
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	pos = append(pos, rest...)
	if err := layered(fs, os.Getenv); err != nil {
		fmt.Fprintf(stderr, "corfu %s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	return pos, 0, true
}

// newLogger returns a structured logger writing to w at the named level
// (debug, info, warn, error), as text or, with json, as JSON lines.
func newLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
