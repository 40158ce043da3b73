package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Remove asks first, saying what comes back and which shared file stays;
// Cancel (or Escape) keeps everything; confirming deletes the preset's own
// file and leaves the shared one to the preset that uses it. At 375 px the
// card and the dialog fit.
func TestRemoveAsksThenKeepsSharedFiles(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	const presets = `presets:
  SDXL:
    name: SDXL Base
    category: Image Generation
    files:
    - path: checkpoints/sdxl.safetensors
      url: https://huggingface.co/acme/sdxl/resolve/main/sdxl.safetensors
    - path: vae/sdxl-vae.safetensors
      url: https://huggingface.co/acme/sdxl/resolve/main/sdxl-vae.safetensors
  REFINER:
    name: SDXL Refiner
    category: Image Generation
    files:
    - path: vae/sdxl-vae.safetensors
      url: https://huggingface.co/acme/sdxl/resolve/main/sdxl-vae.safetensors
    - path: checkpoints/refiner.safetensors
      url: https://huggingface.co/acme/refiner/resolve/main/refiner.safetensors
`
	files := map[string]int{"checkpoints/sdxl.safetensors": 3_000_000, "vae/sdxl-vae.safetensors": 300_000, "checkpoints/refiner.safetensors": 1_000_000}
	d := startDashboard(t, hf, dashOptions{presets: presets, setup: func(ws string) {
		for rel, n := range files {
			p := filepath.Join(ws, "models", rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}})
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	const card = `li.preset[data-id="SDXL"]`
	remove := card + ` button[data-action="remove"]`
	tb.waitFor("the installed card with Remove", `document.querySelector('`+card+`').dataset.status === "installed" && document.querySelector('`+remove+`').offsetParent !== null`)
	tb.click(remove)
	tb.waitFor("the dialog with the dry run", `document.getElementById("remove-modal").open && document.getElementById("remove-freed") && !document.getElementById("remove-confirm").disabled`)
	if got := eval[string](tb, `document.querySelector("#remove-modal .modal-text").textContent`); got != "Removing SDXL Base deletes 1 file and frees 3.0 MB on the volume. Installing it again downloads them again." {
		t.Errorf("dialog text %q", got)
	}
	if got := eval[string](tb, `document.getElementById("remove-deleted").textContent`); got != "checkpoints/sdxl.safetensors" {
		t.Errorf("deleted list %q", got)
	}
	if got := eval[string](tb, `document.getElementById("remove-kept").textContent`); got != "vae/sdxl-vae.safetensors used by SDXL Refiner" {
		t.Errorf("kept list %q", got)
	}
	if got := eval[string](tb, `document.activeElement.id`); got != "remove-cancel" {
		t.Errorf("focus on %q, want the safe choice (Cancel)", got)
	}

	// On a phone the dialog fits.
	tb.do("phone size", chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile))
	tb.waitFor("the narrow layout", `document.documentElement.clientWidth === 375`)
	if out := eval[[]string](tb, outsideJS); len(out) > 0 {
		t.Errorf("sticking out at 375 px with the dialog open: %v", out)
	}
	if dir := os.Getenv("DASHBOARD_SCREENSHOTS"); dir != "" {
		buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "remove-dialog-375.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Escape keeps everything, and the focus goes back to Remove.
	tb.do("press Escape", chromedp.KeyEvent(kb.Escape))
	tb.waitFor("the dialog closed", `!document.getElementById("remove-modal").open && document.activeElement === document.querySelector('`+remove+`')`)
	if _, err := os.Stat(filepath.Join(d.workspace, "models", "checkpoints", "sdxl.safetensors")); err != nil {
		t.Fatalf("Escape removed the file: %v", err)
	}

	tb.click(remove)
	tb.waitFor("the dialog again", `document.getElementById("remove-modal").open && !document.getElementById("remove-confirm").disabled`)
	tb.click("#remove-confirm")
	tb.waitFor("the dialog closed after removing", `!document.getElementById("remove-modal").open`)
	tb.waitFor("the card says what came back", `document.querySelector('`+card+` .msg').textContent === "Removed: 3.0 MB freed. 1 shared file stays for other presets."`)
	tb.waitFor("the card partly installed, the other installed", `document.querySelector('`+card+`').dataset.status === "partial" && document.querySelector('li.preset[data-id="REFINER"]').dataset.status === "installed"`)
	tb.waitFor("the activity", `[...document.querySelectorAll("#recent-list .act-title")].some((e) => e.textContent === "Removed SDXL Base")`)
	if _, err := os.Stat(filepath.Join(d.workspace, "models", "checkpoints", "sdxl.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("the preset's own file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.workspace, "models", "vae", "sdxl-vae.safetensors")); err != nil {
		t.Fatalf("the shared file went: %v", err)
	}
	// The card on a phone: the actions wrap inside it.
	if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("Home scrolls sideways at 375 px: %v", w)
	}
	if out := eval[[]string](tb, outsideJS); len(out) > 0 {
		t.Errorf("sticking out at 375 px: %v", out)
	}
}

// Verify shows in the queue as Verifying, with progress, and can be
// cancelled; a verify that finds a damaged file names it and marks it
// corrupt; Repair fetches it again and the preset is whole.
func TestVerifyThenRepair(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	sum := hf.add("acme/lora", "lora.safetensors", 600<<10, false, 64<<10, 10*time.Millisecond)
	const huge = 16 << 30
	presets := `presets:
  LORA:
    name: Detail LoRA
    category: Image Generation
    files:
    - path: loras/lora.safetensors
      url: https://huggingface.co/acme/lora/resolve/main/lora.safetensors
  HUGE:
    name: Huge Checkpoint
    category: Image Generation
    files:
    - path: checkpoints/huge.safetensors
      url: https://huggingface.co/acme/huge/resolve/main/huge.safetensors
      sha256: ` + strings.Repeat("ab", 32) + `
`
	var good []byte
	d := startDashboard(t, hf, dashOptions{presets: presets, setup: func(ws string) {
		for _, dir := range []string{"loras", "checkpoints"} {
			if err := os.MkdirAll(filepath.Join(ws, "models", dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The LoRA as served, with one byte flipped.
		good = make([]byte, 600<<10)
		for i := range good {
			good[i] = byte(i*7 + len("lora.safetensors"))
		}
		bad := bytes.Clone(good)
		bad[1000] ^= 0x20
		if err := os.WriteFile(filepath.Join(ws, "models", "loras", "lora.safetensors"), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		// A large checkpoint, sparse: it takes seconds to hash, no disk.
		f, err := os.Create(filepath.Join(ws, "models", "checkpoints", "huge.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(huge); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}})
	if got := sha256.Sum256(good); hex.EncodeToString(got[:]) != sum {
		t.Fatal("the test's copy of the served file is wrong")
	}
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	// A long verify: Verifying, with progress, and Cancel stops it.
	tb.click(`li.preset[data-id="HUGE"] button[data-action="verify"]`)
	row := dlRow("HUGE")
	tb.waitFor("verifying with progress", `(() => {
		const r = `+row+`;
		if (!r || r.dataset.kind !== "verify" || r.dataset.status !== "downloading") return false;
		const stats = r.querySelector(".dl-stats").textContent;
		return r.querySelector(".badge").textContent === "Verifying" && !r.querySelector(".dl-kind").hidden &&
			parseInt(r.querySelector(".dl-pct").textContent, 10) > 0 && / of 17\.2 GB/.test(stats) && /\/s/.test(stats) &&
			r.querySelector(".dl-file").textContent === "checkpoints/huge.safetensors";
	})()`)
	tb.waitFor("the card says verifying", `document.querySelector('li.preset[data-id="HUGE"] .badge[data-status="verifying"]') && document.querySelector('li.preset[data-id="HUGE"] button[data-action="install"]').disabled`)
	tb.do("click Cancel", chromedp.Evaluate[chromedp.Void]((row + `.querySelector('[data-action="cancel"]').click()`)))
	tb.waitFor("cancelled", `(`+row+`).dataset.status === "cancelled"`)
	if st, err := os.Stat(filepath.Join(d.workspace, "models", "checkpoints", "huge.safetensors")); err != nil || st.Size() != huge {
		t.Fatalf("the file after a cancelled verify: %v", err)
	}

	// The damaged LoRA: the verify fails naming it, and the file is corrupt.
	const card = `li.preset[data-id="LORA"]`
	tb.click(card + ` button[data-action="verify"]`)
	lora := dlRow("LORA")
	tb.waitForWithin("the verify failed", `(() => {
		const r = `+lora+`;
		return r && r.dataset.status === "failed" && r.querySelector(".dl-error").textContent.includes("Corrupt files found") &&
			r.querySelector(".dl-error").textContent.includes("loras/lora.safetensors") && !r.querySelector('[data-action="repair"]').hidden;
	})()`, 20*time.Second)
	tb.waitFor("the corrupt card", `(() => {
		const c = document.querySelector('`+card+`');
		return c.dataset.status === "partial" && c.dataset.corrupt === "true" && !c.querySelector(".preset-corrupt").hidden &&
			c.querySelector('.preset-files li[data-corrupt="true"] .badge').textContent === "corrupt" &&
			c.querySelector('button[data-action="install"]').textContent === "Repair";
	})()`)

	if dir := os.Getenv("DASHBOARD_SCREENSHOTS"); dir != "" {
		for _, w := range []int64{1280, 375} {
			tb.do("size", chromedp.EmulateViewport(w, 900, chromedp.EmulateScale(1)))
			buf, err := chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS("#presets-card")))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "verify-corrupt-"+strconv.FormatInt(w, 10)+".png"), buf, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			buf, err = chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS("#queue-card")))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "verify-queue-"+strconv.FormatInt(w, 10)+".png"), buf, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		tb.do("desktop size", chromedp.EmulateViewport(1280, 900))
	}

	// Repair from the card: the file is fetched again and the preset is whole.
	tb.click(card + ` button[data-action="install"]`)
	tb.waitForWithin("repaired", `(() => {
		const c = document.querySelector('`+card+`');
		return c.dataset.status === "installed" && c.dataset.corrupt === "false" && c.querySelector(".preset-corrupt").hidden && (`+lora+`).dataset.kind === "install" && (`+lora+`).dataset.status === "completed";
	})()`, 20*time.Second)
	raw, err := os.ReadFile(filepath.Join(d.workspace, "models", "loras", "lora.safetensors"))
	if err != nil || !bytes.Equal(raw, good) {
		t.Fatalf("the repaired file is not the served one (%v)", err)
	}

	// Verify again: it passes.
	tb.click(card + ` button[data-action="verify"]`)
	tb.waitForWithin("verified", `(() => { const r = `+lora+`; return r && r.dataset.kind === "verify" && r.dataset.status === "completed" && r.querySelector(".badge").textContent === "Verified"; })()`, 20*time.Second)
}
