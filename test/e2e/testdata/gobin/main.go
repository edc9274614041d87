// Command gobin exercises the Go runtime's use of the kernel: goroutines
// on several threads, the netpoller's eventfd and epoll under time.Sleep,
// timers and tickers, channels, os/exec and a file in /tmp. Its output is
// the same wherever it runs, so a sandbox's can be compared with the
// host's.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

func main() {
	runtime.GOMAXPROCS(4)

	// Goroutines passing work over channels.
	jobs := make(chan int)
	results := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				s := 0
				for i := 0; i <= j*1000; i++ {
					s += i % 7
				}
				results <- s
			}
		}()
	}
	go func() {
		for j := 0; j < 100; j++ {
			jobs <- j
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	total := 0
	for r := range results {
		total += r
	}
	fmt.Println("workers total", total)

	// time.Sleep parks on the netpoller (eventfd + epoll_pwait).
	start := time.Now()
	time.Sleep(30 * time.Millisecond)
	fmt.Println("sleep at least 30ms:", time.Since(start) >= 30*time.Millisecond)

	// A timer, a stopped timer, a ticker and a select timeout.
	t := time.NewTimer(20 * time.Millisecond)
	stopped := time.NewTimer(time.Hour)
	fmt.Println("stop pending timer:", stopped.Stop())
	<-t.C
	fmt.Println("timer fired")
	tk := time.NewTicker(5 * time.Millisecond)
	for i := 0; i < 3; i++ {
		<-tk.C
	}
	tk.Stop()
	fmt.Println("ticker ticked 3 times")
	never := make(chan int)
	select {
	case <-never:
		fmt.Println("impossible")
	case <-time.After(10 * time.Millisecond):
		fmt.Println("select timed out")
	}

	// Many goroutines sleeping at once.
	var sl sync.WaitGroup
	woke := make(chan int, 50)
	for i := 0; i < 50; i++ {
		sl.Add(1)
		go func(i int) {
			defer sl.Done()
			time.Sleep(time.Duration(i%5) * time.Millisecond)
			woke <- i
		}(i)
	}
	sl.Wait()
	close(woke)
	n := 0
	for range woke {
		n++
	}
	fmt.Println("sleepers woke", n)

	// A child process.
	err := exec.Command("/bin/true").Run()
	fmt.Println("exec /bin/true:", err)
	out, err := exec.Command("/bin/sh", "-c", "echo child says hi").Output()
	fmt.Printf("exec sh: %q %v\n", out, err)

	// A file in /tmp.
	p := filepath.Join(os.TempDir(), fmt.Sprintf("gobin-%d", os.Getpid()))
	werr := os.WriteFile(p, []byte("hello from go\n"), 0o644)
	data, rerr := os.ReadFile(p)
	fmt.Printf("tmp file: %v %v %q\n", werr, rerr, data)
	fmt.Println("remove:", os.Remove(p))
}
