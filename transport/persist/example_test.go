package persist_test

import (
	"fmt"
	"log"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/persist"
)

// A sequencer host that persists its reservation mark, crashes, and comes
// back above every address it handed out.
func ExampleOpen() {
	fs := vfs.NewMem() // vfs.Default in a real daemon
	d, err := persist.Open(fs, "/var/lib/corfu/seq", persist.Options{Node: "seq"})
	if err != nil {
		log.Fatal(err)
	}
	srv := &transport.Server{
		Sequencer: sequencer.New(sequencer.Config{Incarnation: d.Incarnation()}),
		Persist:   d,
	}
	srv.Handle(&transport.Request{Op: transport.OpBootstrap})
	tok := srv.Handle(&transport.Request{Op: transport.OpToken, N: 10})
	fmt.Println("handed out", tok.Addr, "to", tok.Addr+9)

	// The power goes: only what was synced survives.
	fs = fs.CrashClone(vfs.CrashOptions{})
	d, err = persist.Open(fs, "/var/lib/corfu/seq", persist.Options{Node: "seq"})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	seq := sequencer.New(d.SequencerConfig(sequencer.Config{}))
	res, _ := seq.Seal(1)
	fmt.Println("restarted above them:", res.Tail > tok.Addr+9)
	// Output:
	// handed out 0 to 9
	// restarted above them: true
}
