package e2e

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// showcasePresets look like a real pod's: every preset state, long names,
// big sizes, a gated model and three categories.
const showcasePresets = `presets:
  FLUX_SCHNELL:
    name: FLUX.1 Schnell
    category: Image Generation
    type: image
    description: Fast 4-step text-to-image model from Black Forest Labs, good for drafts and quick iterations.
    download_size: 17.2GB
    files:
    - path: diffusion_models/flux1-schnell.safetensors
      url: https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/flux1-schnell.safetensors
      size: 23.8GB
    - path: vae/ae.safetensors
      url: https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors
      size: 335MB
  FLUX_DEV:
    name: FLUX.1 Dev
    category: Image Generation
    type: image
    description: The guidance-distilled development model. Needs the licence accepted on HuggingFace.
    download_size: 23.8GB
    gated: true
    files:
    - path: diffusion_models/flux1-dev.safetensors
      url: https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors
      size: 23.8GB
  SDXL_BASE:
    name: Stable Diffusion XL Base 1.0
    category: Image Generation
    type: image
    description: The SDXL base checkpoint.
    files:
    - path: checkpoints/sd_xl_base_1.0.safetensors
      url: https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors
      size: 6.9GB
  SDXL_LORA_PACK:
    name: SDXL LoRA pack with an unusually long name to test wrapping
    category: Image Generation
    type: image
    description: Two LoRAs; one is already in place.
    files:
    - path: loras/sdxl-detail.safetensors
      url: https://huggingface.co/acme/sdxl-loras/resolve/main/sdxl-detail.safetensors
      size: 228MB
    - path: loras/sdxl-light.safetensors
      url: https://huggingface.co/acme/sdxl-loras/resolve/main/sdxl-light.safetensors
      size: 393MB
  WAN22_T2V:
    name: Wan 2.2 Text to Video
    category: Video Generation
    type: video
    description: Wan 2.2 14B text-to-video with its text encoder and VAE.
    files:
    - path: diffusion_models/wan2.2_t2v_14B_fp8.safetensors
      url: https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/wan2.2_t2v_14B_fp8.safetensors
      size: 14.3GB
  LTX_VIDEO:
    name: LTX-Video 2B
    category: Video Generation
    type: video
    description: Efficient video generation with long descriptive prompts.
    files:
    - path: checkpoints/ltx-video-2b-v0.9.5.safetensors
      url: https://huggingface.co/Lightricks/LTX-Video/resolve/main/ltx-video-2b-v0.9.5.safetensors
      size: 4.8GB
  STABLE_AUDIO:
    name: Stable Audio Open 1.0
    category: Audio Generation
    type: audio
    description: Text-to-audio for sound effects and short music clips.
    files:
    - path: checkpoints/stable-audio-open-1.0.safetensors
      url: https://huggingface.co/stabilityai/stable-audio-open-1.0/resolve/main/model.safetensors
      size: 4.9GB
  ACE_STEP:
    name: ACE-Step Music
    category: Audio Generation
    type: audio
    description: Music generation; its file has moved upstream, so the install fails.
    files:
    - path: checkpoints/ace_step_v1_3.5b.safetensors
      url: https://huggingface.co/ACE-Step/ACE-Step-v1-3.5B/resolve/main/missing.safetensors
      size: 7.7GB
`

// TestScreenshots renders every page at desktop and phone width in both
// themes, checks none of them scrolls sideways, and with
// DASHBOARD_SCREENSHOTS=dir saves them as PNGs for a person to look at.
func TestScreenshots(t *testing.T) {
	needBrowser(t)
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hf := newFakeHF(t)
	hf.add("stabilityai/stable-audio-open-1.0", "model.safetensors", 2<<20, false, 256<<10, 5*time.Millisecond)
	// About 650 KB/s for 64 MiB: still running when the screenshots are done.
	hf.add("Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "wan2.2_t2v_14B_fp8.safetensors", 64<<20, false, 64<<10, 100*time.Millisecond)
	hf.add("Lightricks/LTX-Video", "ltx-video-2b-v0.9.5.safetensors", 1<<20, false, 64<<10, 100*time.Millisecond)

	// Two GPUs, a ComfyUI with a prompt running and two waiting, and a
	// 20 GB volume: the FLUX presets (24 GB) do not fit, so Install warns.
	smi := newFakeSMI(t, twoGPUs)
	comfy := newFakeComfy(t, 0, 0) // busy after the empty states

	const password = "screenshots"
	d := startDashboard(t, hf, dashOptions{presets: showcasePresets, password: password, comfyui: comfy.srv.URL,
		env: []string{smi.pathEnv(), "VOLUME_SIZE_GB=20"}, setup: func(ws string) {
			for _, p := range []string{"checkpoints/sd_xl_base_1.0.safetensors", "loras/sdxl-detail.safetensors"} {
				f := filepath.Join(ws, "models", filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte("model"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}})

	tb := newTab(t, newBrowser(t), "screens")
	shot := func(name string, full bool) {
		t.Helper()
		if dir == "" {
			return
		}
		var act chromedp.Action[[]byte]
		if full {
			act = chromedp.FullScreenshot(100)
		} else {
			act = chromedp.CaptureScreenshot()
		}
		buf, err := chromedp.Run(tb.ctx, act)
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// noOverflow checks the page fits the width the test asked for (a phone
	// may widen its layout viewport to fit wide content, so clientWidth
	// alone is not enough) and that nothing sticks out of its card or dialog.
	noOverflow := func(what string, width int) {
		t.Helper()
		got := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
		if got[0] > got[1] || got[0] > width {
			t.Errorf("%s scrolls sideways: scrollWidth %d, clientWidth %d", what, got[0], got[1])
		}
		if out := eval[[]string](tb, outsideJS); len(out) > 0 {
			t.Errorf("%s: sticking out of their card: %v", what, out)
		}
	}

	// The login page comes first, before there is a session.
	tb.do("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	tb.navigate(d.url("/"))
	tb.waitFor("the login page", `location.pathname === "/login"`)
	noOverflow("login at 390 px", 390)
	tb.typeInto("#password", password+"\n")
	tb.waitLive()

	// Empty states, before anything has happened.
	for _, width := range []int64{1280, 390} {
		if width == 390 {
			tb.do("phone size", chromedp.EmulateViewport(width, 844, chromedp.EmulateMobile))
		} else {
			tb.do("desktop size", chromedp.EmulateViewport(width, 900))
		}
		for _, p := range []struct{ name, path, ready string }{
			{"home", "/", `!document.getElementById("queue-empty").hidden && document.querySelector("li.preset") && document.querySelectorAll(".gpu").length === 2`},
			{"history", "/history", `!document.getElementById("hist-empty").hidden`},
			{"activity", "/activity", `!document.getElementById("log-empty").hidden`},
		} {
			tb.navigate(d.url(p.path))
			tb.waitLive()
			tb.waitFor(p.name+" empty", p.ready)
			noOverflow(fmt.Sprintf("empty %s at %d px", p.name, width), int(width))
			shot(fmt.Sprintf("empty-%s-%d-dark", p.name, width), true)
		}
	}

	comfy.set(1, 2)
	d.addActivity("generation", "started", "Generation started", "portrait_workflow.json (prompt 5f2c9a)", map[string]any{"prompt_id": "5f2c9a", "workflow": "portrait_workflow.json"})
	d.addActivity("generation", "completed", "4 images generated", "portrait_workflow.json (prompt 5f2c9a)", map[string]any{"prompt_id": "5f2c9a", "images": 4, "duration_seconds": 42})
	d.addActivity("error", "failed", "ComfyUI is unreachable", "http://127.0.0.1:8188", nil)
	// Downloads run one at a time: one completes, one fails, one runs, one waits.
	for _, id := range []string{"STABLE_AUDIO", "ACE_STEP", "WAN22_T2V", "LTX_VIDEO"} {
		d.mustAPI("POST", "/api/presets/"+id+"/install", nil, http.StatusAccepted, nil)
	}
	waitDownloads(t, d, map[string]string{"STABLE_AUDIO": "completed", "ACE_STEP": "failed", "WAN22_T2V": "downloading", "LTX_VIDEO": "queued"})

	pages := []struct{ name, path, ready string }{
		{"home", "/", `document.querySelectorAll("#queue-list li.dl").length === 4 && document.querySelector('li.preset[data-id="FLUX_DEV"]') && document.querySelectorAll("#recent-list li.act").length >= 5 && document.querySelectorAll(".gpu").length === 2 && document.querySelector('[data-tile="comfyui"]').textContent.includes("1 running") && document.querySelectorAll(".sys-folders-list li").length >= 2`},
		{"activity", "/activity", `document.querySelectorAll("#log-list li.act").length >= 5`},
		{"history", "/history", `document.querySelectorAll("#hist-body tr").length === 4 && document.querySelector("#hist-body tr[data-status=failed] .hist-err").textContent !== ""`},
		{"settings", "/settings", `document.getElementById("retention-input").value !== ""`},
		{"login", "/login", `document.getElementById("login-form")`},
	}
	for _, theme := range []string{"dark", "light"} {
		d.mustAPI("PATCH", "/api/settings", map[string]any{"theme": theme}, http.StatusOK, nil)
		for _, width := range []int64{1280, 390} {
			if width == 390 {
				tb.do("phone size", chromedp.EmulateViewport(width, 844, chromedp.EmulateMobile))
			} else {
				tb.do("desktop size", chromedp.EmulateViewport(width, 900))
			}
			for _, p := range pages {
				tb.navigate(d.url(p.path))
				if p.name != "login" {
					tb.waitLive()
				}
				tb.waitFor(p.name+" in "+theme, `document.documentElement.dataset.theme === "`+theme+`"`)
				tb.waitFor(p.name+" ready", p.ready)
				if p.name == "activity" {
					tb.do("open one entry's details", chromedp.Evaluate[chromedp.Void](`document.querySelector('#log-list li.act[data-type="generation"][data-status="completed"] details').open = true`))
				}
				if p.name == "home" {
					tb.do("open the model folders", chromedp.Evaluate[chromedp.Void](`document.querySelector(".sys-folders").open = true`))
					tb.waitFor("the space warning on FLUX", `!document.querySelector('li.preset[data-id="FLUX_SCHNELL"] .preset-warn').hidden && document.querySelector('li.preset[data-id="SDXL_BASE"] .preset-warn').hidden`)
				}
				noOverflow(fmt.Sprintf("%s at %d px, %s", p.name, width, theme), int(width))
				shot(fmt.Sprintf("%s-%d-%s", p.name, width, theme), true)
				if p.name == "home" && dir != "" {
					// The pod panel alone, to look at closely.
					buf, err := chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS("#system-card")))
					if err != nil {
						t.Fatalf("screenshot the pod panel: %v", err)
					}
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pod-%d-%s.png", width, theme)), buf, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The token prompt, from Install on the gated preset.
			tb.navigate(d.url("/"))
			tb.waitLive()
			tb.do("scroll to the gated preset", chromedp.ScrollIntoView(chromedp.CSS(`li.preset[data-id="FLUX_DEV"]`)))
			scrolled := eval[float64](tb, `scrollY`)
			tb.click(`li.preset[data-id="FLUX_DEV"] button[data-action="install"]`)
			tb.waitFor("the token modal", `document.getElementById("token-modal").open`)
			tb.typeInto("#token-modal-input", "hf_notquitegood")
			tb.click("#token-modal-test")
			tb.waitFor("the test result", `document.getElementById("token-modal-msg").textContent !== ""`)
			noOverflow(fmt.Sprintf("token modal at %d px, %s", width, theme), int(width))
			shot(fmt.Sprintf("modal-%d-%s", width, theme), false)
			backdropCovers(t, tb, fmt.Sprintf("token modal at %d px, %s", width, theme), theme)
			tb.do("close the modal", chromedp.KeyEvent(kb.Escape))
			// The page is let go by the dialog's close event, which follows its closing.
			tb.waitFor("the modal closed", `!document.getElementById("token-modal").open && !document.documentElement.classList.contains("modal-open")`)
			if y := eval[float64](tb, `scrollY`); y < scrolled-1 || y > scrolled+1 || scrolled == 0 {
				t.Errorf("the page was at %v before the modal and at %v after it", scrolled, y)
			}
		}
	}
	// The narrowest phone the UI must serve: every page still fits.
	tb.do("375 px", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	for _, p := range pages {
		tb.navigate(d.url(p.path))
		if p.name != "login" {
			tb.waitLive()
		}
		tb.waitFor(p.name+" ready at 375 px", p.ready)
		noOverflow(p.name+" at 375 px", 375)
	}
	// Settings with a saved token.
	d.mustAPI("POST", "/api/settings/hf-token", map[string]any{"token": goodToken}, http.StatusOK, nil)
	for _, width := range []int64{1280, 390} {
		tb.do("size", chromedp.EmulateViewport(width, 900))
		tb.navigate(d.url("/settings"))
		tb.waitLive()
		tb.waitFor("the token in use", `document.getElementById("token-state-text").textContent.includes("alice")`)
		noOverflow(fmt.Sprintf("settings with a token at %d px", width), int(width))
		shot(fmt.Sprintf("settings-token-%d-light", width), true)
	}
	// The reconnect banner, once: it must be in view on a phone.
	d.stop()
	tb.waitFor("the banner", `!document.getElementById("reconnect-banner").hidden`)
	shot("reconnecting-390-light", false)
	if !eval[bool](tb, `document.getElementById("reconnect-banner").getBoundingClientRect().top < innerHeight`) {
		t.Error("the reconnect banner is not in view")
	}
}

// waitDownloads polls the queue until each preset's latest download has the wanted status.
func waitDownloads(t *testing.T, d *dashboard, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var q struct {
			Downloads []struct {
				ID       int64  `json:"id"`
				PresetID string `json:"preset_id"`
				Status   string `json:"status"`
			} `json:"downloads"`
		}
		d.mustAPI("GET", "/api/downloads", nil, http.StatusOK, &q)
		got := map[string]string{}
		for _, dl := range q.Downloads {
			got[dl.PresetID] = dl.Status
		}
		ok := true
		for id, st := range want {
			if got[id] != st {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("downloads %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outsideJS lists elements wider than the card or dialog they are in,
// unless a box between them clips or scrolls them on purpose.
const outsideJS = `(() => {
  const out = [];
  for (const box of document.querySelectorAll(".card, dialog[open]")) {
    const b = box.getBoundingClientRect();
    if (b.width === 0) continue;
    for (const el of box.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || (r.right <= b.right + 0.5 && r.left >= b.left - 0.5)) continue;
      let clipped = false;
      for (let p = el.parentElement; p && p !== box; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== "visible") { clipped = true; break; }
      }
      if (!clipped) out.push(el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "") + " +" + Math.round(r.right - b.right) + "px");
    }
  }
  return out.slice(0, 6);
})()`

// backdropCovers checks that an open modal's backdrop covers the whole page,
// not only the window: the page is pinned to the window's height, and a
// capture of the full page (which a page longer than the window once showed
// with an uncovered strip at the bottom) is tinted down to its last row.
func backdropCovers(t *testing.T, tb *tab, what, theme string) {
	t.Helper()
	if got := eval[[]float64](tb, `[document.documentElement.scrollHeight, innerHeight]`); got[0] > got[1]+1 {
		t.Errorf("%s: the page is %v px tall behind the modal, taller than the %v px window", what, got[0], got[1])
	}
	buf, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("%s: full capture: %v", what, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	if theme != "light" {
		return // the dark page and its backdrop are too close to tell apart by brightness
	}
	b := img.Bounds()
	for _, x := range []int{b.Min.X + 3, b.Dx() / 2, b.Max.X - 4} {
		r, g, bl, _ := img.At(x, b.Max.Y-2).RGBA()
		if lum := (r>>8 + g>>8 + bl>>8) / 3; lum > 200 {
			t.Errorf("%s: the bottom of the page is not under the backdrop (pixel %d,%d has brightness %d)", what, x, b.Max.Y-2, lum)
		}
	}
}
