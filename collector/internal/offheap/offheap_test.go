package offheap

import (
	"runtime"
	"testing"
)

type row struct {
	a, b uint32
	f    [3]float64
	ok   bool
}

func TestSliceIsMappedZeroedAndAligned(t *testing.T) {
	r := New(1 << 20)
	defer r.Free()
	if runtime.GOOS == "linux" && !r.Mapped() {
		t.Fatal("not mapped on linux")
	}
	b := r.Bytes(3, 3) // leaves the next slice unaligned unless Slice aligns it
	rows := Slice[row](r, 10, 100)
	if len(rows) != 10 || cap(rows) != 100 {
		t.Fatalf("len %d cap %d", len(rows), cap(rows))
	}
	for i := range rows {
		if rows[i] != (row{}) {
			t.Fatalf("row %d not zero: %+v", i, rows[i])
		}
	}
	for i := range 100 {
		rows = append(rows, row{a: uint32(i), f: [3]float64{float64(i)}})
	}
	runtime.GC() // the collector must not trip over slices it does not own
	if rows[109].a != 99 || rows[109].f[0] != 99 || len(b) != 3 {
		t.Fatalf("rows lost their values: %+v", rows[109])
	}
	if r.Free() != nil || r.Mapped() {
		t.Fatal("Free")
	}
}

// Past its size a Region hands out heap memory: a scrape that outgrows its
// estimate still works.
func TestSliceFallsBackWhenFull(t *testing.T) {
	r := New(4096)
	defer r.Free()
	s := Slice[uint64](r, 1000, 1000) // 8,000 bytes: more than the region
	s[999] = 7
	if len(s) != 1000 || s[999] != 7 {
		t.Fatal("fallback slice")
	}
}

func TestSliceRefusesPointers(t *testing.T) {
	r := New(4096)
	defer r.Free()
	for name, f := range map[string]func(){
		"string":  func() { Slice[string](r, 1, 1) },
		"pointer": func() { Slice[*int](r, 1, 1) },
		"struct": func() {
			Slice[struct {
				a int
				s []byte
			}](r, 1, 1)
		},
		"array": func() { Slice[[2]map[int]int](r, 1, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
