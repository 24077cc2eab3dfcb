package main

import (
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/corfulog/corfu/sim"
)

// scaleFlags are corfu scale's flags.
type scaleFlags struct {
	out      string
	chains   []int
	cfg      sim.ScalingConfig
	parallel int
}

// parseScaleFlags parses corfu scale's command line.
func parseScaleFlags(args []string, stderr io.Writer) (*scaleFlags, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	f := &scaleFlags{}
	fs.StringVar(&f.out, "out", "docs", "directory to write scaling.csv and scaling.png to")
	chains := fs.String("chains", "1,2,4,8,16,32", "comma-separated numbers of chains to measure")
	fs.Uint64Var(&f.cfg.Seed, "seed", 1, "seed of every run; the same seed gives the same figure")
	fs.IntVar(&f.cfg.Replicas, "replicas", 2, "units per chain")
	fs.IntVar(&f.cfg.Clients, "clients", sim.DefaultScalingClients, "client nodes, each with its own 1 Gb/s link")
	fs.IntVar(&f.cfg.Workers, "workers", sim.DefaultScalingWorkers, "closed-loop workers per client")
	fs.IntVar(&f.cfg.EntryBytes, "entry", sim.DefaultEntryBytes, "bytes of each entry's payload")
	link := fs.Float64("link", 1, "every node's link, in Gb/s per direction")
	unit := fs.Float64("unit-bw", 0, "a unit's flash bandwidth for reads and writes, in Gb/s (0: the link's)")
	fs.DurationVar(&f.cfg.Propagation, "propagation", sim.DefaultPropagation, "one-way time of the wire and the switch")
	fs.DurationVar(&f.cfg.TokenService, "token", sim.DefaultTokenService, "the sequencer's time per token request (5µs: 200K tokens/s)")
	fs.DurationVar(&f.cfg.Warmup, "warmup", sim.DefaultScalingWarmup, "virtual time before the window")
	fs.DurationVar(&f.cfg.Window, "window", sim.DefaultScalingWindow, "virtual time over which operations are counted")
	fs.IntVar(&f.parallel, "j", runtime.GOMAXPROCS(0), "runs at once")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprint(stderr, "usage: corfu scale [flags]\n\n"+
			"Measures append and read throughput against the number of chains in the\n"+
			"simulator, writes scaling.csv and scaling.png to --out and prints a\n"+
			"markdown table.\n\nflags:\n")
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for s := range strings.SplitSeq(*chains, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--chains %q: want positive numbers separated by commas", *chains)
		}
		f.chains = append(f.chains, n)
	}
	switch {
	case *link <= 0:
		return nil, errors.New("--link must be positive")
	case *unit < 0:
		return nil, errors.New("--unit-bw must not be negative")
	case f.parallel < 1:
		return nil, errors.New("-j must be at least 1")
	case f.cfg.Window <= 0:
		return nil, errors.New("--window must be positive")
	}
	f.cfg.Link = *link * sim.Gbps
	f.cfg.UnitBandwidth = *unit * sim.Gbps
	return f, nil
}

// scaleCmd runs the scaling experiment: one sim.Scale per number of
// chains, in parallel. It writes the CSV and the plot and prints the
// table; its exit status is 1 if a run failed, 2 for bad flags.
func scaleCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseScaleFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "corfu scale: %v (corfu scale -h lists the flags)\n", err)
		return 2
	}
	wall := time.Now()
	points := make([]sim.ScalingPoint, len(f.chains))
	errs := make([]error, len(f.chains))
	var wg sync.WaitGroup
	slots := make(chan struct{}, f.parallel)
	for i, n := range f.chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			cfg := f.cfg
			cfg.Chains = n
			points[i], errs[i] = sim.Scale(cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "corfu scale: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		fmt.Fprintf(stderr, "corfu scale: %v\n", err)
		return 1
	}
	csvPath := filepath.Join(f.out, "scaling.csv")
	pngPath := filepath.Join(f.out, "scaling.png")
	if err := os.WriteFile(csvPath, []byte(scalingCSV(points)), 0o644); err != nil {
		fmt.Fprintf(stderr, "corfu scale: %v\n", err)
		return 1
	}
	if err := scalingPlot(points, f.cfg, pngPath); err != nil {
		fmt.Fprintf(stderr, "corfu scale: plot: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, scalingTable(points))
	fmt.Fprintf(stderr, "corfu scale: wrote %s and %s in %v\n", csvPath, pngPath, time.Since(wall).Round(time.Second))
	return 0
}

// scalingCSV renders the points as CSV: one row per number of chains.
func scalingCSV(points []sim.ScalingPoint) string {
	var b strings.Builder
	b.WriteString("chains,units,appends_per_s,reads_per_s,append_mean_latency_us,read_mean_latency_us\n")
	for _, p := range points {
		fmt.Fprintf(&b, "%d,%d,%.0f,%.0f,%d,%d\n", p.Chains, p.Units, p.Appends.PerSecond, p.Reads.PerSecond,
			p.Appends.MeanLatency.Microseconds(), p.Reads.MeanLatency.Microseconds())
	}
	return b.String()
}

// scalingTable renders the points as a markdown table.
func scalingTable(points []sim.ScalingPoint) string {
	var b strings.Builder
	b.WriteString("| chains | units | appends/s | reads/s | append latency (mean) | read latency (mean) |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range points {
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %v | %v |\n", p.Chains, p.Units,
			thousands(p.Appends.PerSecond), thousands(p.Reads.PerSecond),
			p.Appends.MeanLatency.Round(10*time.Microsecond), p.Reads.MeanLatency.Round(10*time.Microsecond))
	}
	return b.String()
}

// thousands prints v rounded, with commas between groups of three digits.
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// scalingPlot draws throughput against units, with the sequencer's cap as
// a dashed line, and saves it as a PNG at path.
func scalingPlot(points []sim.ScalingPoint, cfg sim.ScalingConfig, path string) error {
	p := plot.New()
	entry := cfg.EntryBytes
	if entry == 0 {
		entry = sim.DefaultEntryBytes
	}
	p.Title.Text = fmt.Sprintf("CORFU in the simulator: %d-byte entries, chains of %d, %g Gb/s links",
		entry, cfg.Replicas, cfg.Link/sim.Gbps)
	p.X.Label.Text = "storage units"
	p.Y.Label.Text = "thousand operations per second"
	p.X.Min, p.Y.Min = 0, 0
	var ticks []plot.Tick
	appends := make(plotter.XYs, len(points))
	reads := make(plotter.XYs, len(points))
	maxX, maxY := 0.0, 0.0
	for i, pt := range points {
		x := float64(pt.Units)
		appends[i] = plotter.XY{X: x, Y: pt.Appends.PerSecond / 1000}
		reads[i] = plotter.XY{X: x, Y: pt.Reads.PerSecond / 1000}
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.Itoa(pt.Units)})
		maxX = max(maxX, x)
		maxY = max(maxY, appends[i].Y, reads[i].Y)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	blue := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	orange := color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	for _, s := range []struct {
		name string
		xys  plotter.XYs
		c    color.Color
		g    draw.GlyphDrawer
	}{
		{"reads", reads, blue, draw.CircleGlyph{}},
		{"appends", appends, orange, draw.BoxGlyph{}},
	} {
		l, sc, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return err
		}
		l.Color = s.c
		l.Width = vg.Points(1.5)
		sc.Color = s.c
		sc.Shape = s.g
		sc.Radius = vg.Points(3)
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	token := cfg.TokenService
	if token == 0 {
		token = sim.DefaultTokenService
	}
	cap := float64(time.Second) / float64(token) / 1000
	capLine, err := plotter.NewLine(plotter.XYs{{X: 0, Y: cap}, {X: maxX, Y: cap}})
	if err != nil {
		return err
	}
	capLine.Color = color.Gray{Y: 0x60}
	capLine.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(capLine)
	p.Legend.Add(fmt.Sprintf("sequencer cap (%.0fK tokens/s)", cap), capLine)
	// NB: room above the highest point for the legend, top left.
	p.X.Max, p.Y.Max = 1.04*maxX, 1.15*max(maxY, cap)
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(10)
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
