package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// A user drops ComfyUI's real getting-started template on Home: the card
// lists its three models (one already on the pod, in the alias folder), and
// "Install missing" brings the other two, followed live until installed.
func TestDropAWorkflowAndInstallWhatIsMissing(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	hf.add("Comfy-Org/z_image_turbo", "split_files/vae/ae.safetensors", 400<<10, false, 32<<10, 20*time.Millisecond)
	hf.add("Comfy-Org/z_image_turbo", "split_files/diffusion_models/z_image_turbo_bf16.safetensors", 600<<10, false, 32<<10, 20*time.Millisecond)
	const presets = `presets:
  ZIMAGE_VAE:
    name: Z-Image VAE
    files:
    - path: vae/ae.safetensors
      url: https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/vae/ae.safetensors
      size: 409600
`
	d := startDashboard(t, hf, dashOptions{presets: presets, setup: func(ws string) {
		clip := filepath.Join(ws, "models", "clip")
		if err := os.MkdirAll(clip, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clip, "qwen_3_4b.safetensors"), []byte("here"), 0o644); err != nil {
			t.Fatal(err)
		}
	}})
	wf, err := os.ReadFile("../workflows/testdata/01_get_started_text_to_image.json")
	if err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	// Drop it as a browser does: a DataTransfer holding the file.
	tb.do("drop the workflow", chromedp.Evaluate[chromedp.Void](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([`+js(string(wf))+`], "01_get_started_text_to_image.json", {type: "application/json"}));
		document.getElementById("wf-drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`))
	tb.waitFor("the table", `document.querySelectorAll("#wf-list .wf-item").length === 3`)
	if n := eval[int](tb, `document.querySelectorAll('#wf-list .wf-item[data-present="true"]').length`); n != 1 {
		t.Fatalf("%d present, want 1 (the text encoder in clip/)", n)
	}
	if got := eval[string](tb, `document.getElementById("wf-summary").textContent`); got != "01_get_started_text_to_image.json needs 3 model files, 2 missing." {
		t.Errorf("summary %q", got)
	}
	if got := eval[string](tb, `document.getElementById("wf-install").textContent`); got != "Install missing (2 files, at least 410 KB)" {
		t.Errorf("install button %q", got)
	}
	if got := eval[string](tb, `[...document.querySelectorAll("#wf-list .wf-source")].map((e) => e.textContent).join("|")`); got != "|Preset Z-Image VAE|The workflow's link (huggingface.co)" {
		t.Errorf("sources %q", got)
	}

	// On a phone the table stacks and nothing sticks out of the card.
	tb.do("phone size", chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile))
	tb.waitFor("the narrow layout", `document.documentElement.clientWidth === 375`)
	if got := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); got[0] > got[1] {
		t.Errorf("Home with a workflow's table scrolls sideways at 375 px: %v", got)
	}
	if out := eval[[]string](tb, outsideJS); len(out) > 0 {
		t.Errorf("sticking out of their card at 375 px: %v", out)
	}
	if dir := os.Getenv("DASHBOARD_SCREENSHOTS"); dir != "" {
		buf, err := chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS("#workflow-card")))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "workflow-check-375.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb.do("desktop size", chromedp.EmulateViewport(1280, 900))

	// With DASHBOARD_SCREENSHOTS=dir, the card as the README shows it.
	if dir := os.Getenv("DASHBOARD_SCREENSHOTS"); dir != "" {
		buf, err := chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS("#workflow-card")))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "workflow-check.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb.click("#wf-install")
	tb.waitFor("the download in the queue", `[...document.querySelectorAll("#queue-list .dl-name")].some((e) => e.textContent === "01_get_started_text_to_image")`)
	tb.waitForWithin("installed", `document.getElementById("wf-follow").dataset.status === "completed"`, 30*time.Second)
	tb.waitFor("all present after the install", `document.querySelectorAll('#wf-list .wf-item[data-present="true"]').length === 3 && document.getElementById("wf-install").hidden`)
	for _, p := range []string{"vae/ae.safetensors", "diffusion_models/z_image_turbo_bf16.safetensors"} {
		if _, err := os.Stat(filepath.Join(d.workspace, "models", p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}

	// The file picker works too, and a file that is no workflow is said so.
	bad := filepath.Join(t.TempDir(), "notes.json")
	if err := os.WriteFile(bad, []byte(`["not","a","workflow"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.do("pick a file", chromedp.SetUploadFiles(chromedp.CSS("#wf-file"), []string{bad}))
	tb.waitFor("the refusal", `document.getElementById("wf-msg").textContent.startsWith("notes.json: This is not a ComfyUI workflow")`)
}

// The card from the keyboard, and a download that ends before the install
// request answers (a file the host does not have, the answer held back):
// the focus stays where the answer is, and Install comes back for another
// try instead of staying hidden for good.
func TestWorkflowCardKeepsTheFocusAndAFastEnd(t *testing.T) {
	needBrowser(t)
	d := startDashboard(t, newFakeHF(t), dashOptions{})
	dir := t.TempDir()
	wf := filepath.Join(dir, "gone.json")
	if err := os.WriteFile(wf, []byte(`{"nodes":[{"id":1,"type":"LoraLoaderModelOnly","mode":0,"widgets_values":["gone.safetensors",1],
	  "properties":{"models":[{"name":"gone.safetensors","directory":"loras","url":"https://huggingface.co/org/repo/resolve/main/gone.safetensors"}]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "notes.json")
	if err := os.WriteFile(bad, []byte(`["not","a","workflow"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()
	// The install's answer comes only after its download has failed.
	tb.do("hold back the install's answer", chromedp.Evaluate[chromedp.Void](`(() => {
		const real = window.fetch;
		window.fetch = async (...args) => {
			const r = await real(...args);
			if (String(args[0]).includes("/api/workflows/install")) {
				await new Promise((ok) => setTimeout(ok, 2000));
			}
			return r;
		};
	})()`))

	tb.do("focus Choose a file", chromedp.Evaluate[chromedp.Void](`document.getElementById("wf-pick").focus()`))
	tb.do("pick a file that is no workflow", chromedp.SetUploadFiles(chromedp.CSS("#wf-file"), []string{bad}))
	tb.waitFor("the refusal, the focus kept on Choose a file", `document.getElementById("wf-msg").textContent.startsWith("notes.json:") && document.activeElement.id === "wf-pick"`)
	tb.do("pick the workflow", chromedp.SetUploadFiles(chromedp.CSS("#wf-file"), []string{wf}))
	tb.waitFor("the result, focused", `document.querySelectorAll("#wf-list .wf-item").length === 1 && document.activeElement.id === "wf-summary"`)
	tb.do("press Tab", chromedp.KeyEvent(kb.Tab))
	tb.waitFor("Install focused", `document.activeElement.id === "wf-install"`)
	tb.do("press Enter", chromedp.KeyEvent(kb.Enter))
	tb.waitFor("the focus on the download's progress", `document.activeElement.id === "wf-follow"`)
	tb.waitFor("failed, and Install back", `document.getElementById("wf-follow").dataset.status === "failed" && !document.getElementById("wf-install").hidden && document.querySelector('#wf-list .wf-item[data-present="false"]')`)
}
