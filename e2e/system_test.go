package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"dashboard/db"
	"dashboard/model"
)

// The pod panel on Home: two GPUs from nvidia-smi (a malformed line left
// out), the volume at its configured size with the model folders, memory,
// CPU and ComfyUI's queue, all following the pod live. Install warns when a
// preset is larger than the free space.
func TestPodPanel(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	smi := newFakeSMI(t, "0, NVIDIA A100-SXM4-80GB, 81920, 40960, 87, 64\nNVIDIA-SMI has failed for one line\n1, NVIDIA RTX 4090, 24564, 2048, [N/A], 41\n")
	comfy := newFakeComfy(t, 1, 0)
	d := startDashboard(t, hf, dashOptions{presets: testPresets, comfyui: comfy.srv.URL,
		env: []string{smi.pathEnv(), "VOLUME_SIZE_GB=0.003"}, // 3 MB: the 4 MB preset does not fit
		setup: func(ws string) {
			writeFile(t, filepath.Join(ws, "models", "checkpoints", "base.safetensors"), 200_000)
		}})
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	tile := func(name string) string { return `document.querySelector('[data-tile="` + name + `"]').textContent` }
	tb.waitFor("two GPUs", `document.querySelectorAll(".gpu").length === 2`)
	gpus := eval[[]string](tb, `[...document.querySelectorAll(".gpu")].map((g) => g.textContent)`)
	if !strings.Contains(gpus[0], "NVIDIA A100-SXM4-80GB") || !strings.Contains(gpus[0], "40.0 GiB of 80.0 GiB") || !strings.Contains(gpus[0], "87 % busy") || !strings.Contains(gpus[0], "64 °C") {
		t.Errorf("first GPU reads %q", gpus[0])
	}
	if !strings.Contains(gpus[1], "RTX 4090") || !strings.Contains(gpus[1], "busy —") || !strings.Contains(gpus[1], "41 °C") {
		t.Errorf("second GPU reads %q", gpus[1])
	}
	if w := eval[float64](tb, `parseFloat(document.querySelector('.gpu[data-index="0"] .progress-fill').style.width)`); w != 50 {
		t.Errorf("the A100's memory bar is %v%% wide, want 50%%", w)
	}
	tb.waitFor("the volume", tile("volume")+`.includes("2.8 MB free of 3.0 MB") && `+tile("volume")+`.includes("VOLUME_SIZE_GB")`)
	tb.waitFor("ComfyUI's queue", tile("comfyui")+`.includes("1 running · 0 waiting") && `+tile("comfyui")+`.includes("Generating")`)
	tb.waitFor("memory and CPU", `/ of [\d.]+ GiB used/.test(`+tile("memory")+`) && / of \d+ cores?/.test(`+tile("memory")+`)`)

	// The model folders, on expand.
	tb.waitFor("the models counted", `document.querySelector(".sys-folders summary").textContent === "Models: 200 KB in 1 file"`)
	if eval[bool](tb, `document.querySelector(".sys-folders").open`) {
		t.Fatal("the folders are open before being asked")
	}
	tb.click(".sys-folders summary")
	tb.waitFor("the checkpoints folder", `document.querySelector('.sys-folders-list li[data-folder="checkpoints"]').textContent.includes("200 KB · 1 file") && document.querySelector('.sys-folders-list li[data-folder="checkpoints"]').offsetParent !== null`)

	// Install warns where the files do not fit, and only there.
	warn := func(id string) string {
		return `document.querySelector('li.preset[data-id="` + id + `"] .preset-warn')`
	}
	tb.waitFor("the warning on the 4 MB preset", `!`+warn("GATED_MODEL")+`.hidden && `+warn("GATED_MODEL")+`.textContent === "Needs 4.0 MB, but only 2.8 MB is free on the volume." && document.querySelector('li.preset[data-id="GATED_MODEL"] button[data-action="install"]').getAttribute("aria-describedby") === "space-GATED_MODEL"`)
	if !eval[bool](tb, warn("OPEN_LORA")+`.hidden`) {
		t.Fatal("a 1 MB preset that fits is warned about")
	}

	// Live: a download lands and counts at once; nvidia-smi and ComfyUI change.
	d.mustAPI("POST", "/api/presets/OPEN_LORA/install", nil, http.StatusAccepted, nil)
	smi.answer("0, NVIDIA H100 80GB HBM3, 81559, 1024, 55, 70\n")
	comfy.set(0, 3)
	tb.waitForWithin("the LoRA folder", `document.querySelector('.sys-folders-list li[data-folder="loras"]') && document.querySelector('.sys-folders-list li[data-folder="loras"]').textContent.includes("1.0 MB · 1 file") && `+tile("volume")+`.includes("1.8 MB free")`, 20*time.Second)
	tb.waitForWithin("one GPU now", `document.querySelectorAll(".gpu").length === 1 && document.querySelector(".gpu").textContent.includes("H100") && document.querySelector(".gpu").textContent.includes("55 % busy")`, 20*time.Second)
	tb.waitForWithin("ComfyUI idle", tile("comfyui")+`.includes("0 running · 3 waiting") && `+tile("comfyui")+`.includes("Idle")`, 20*time.Second)
	if !eval[bool](tb, `document.querySelector(".sys-folders").open`) {
		t.Error("the open folder list closed when the panel updated")
	}
	if !eval[bool](tb, warn("OPEN_LORA")+`.hidden && !`+warn("GATED_MODEL")+`.hidden`) {
		t.Error("the space warnings are wrong after the download")
	}
}

// The download history page: past downloads newest first with when, preset,
// status, files, size, time taken and why one failed; paged with Load more;
// new downloads arriving live; Retry on failed ones.
func TestDownloadHistoryPage(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	d := startDashboard(t, hf, dashOptions{presets: testPresets, env: []string{"HF_TOKEN=" + goodToken}, setup: func(ws string) {
		seedHistory(t, ws)
	}})
	tb := newTab(t, newBrowser(t), "history")
	tb.navigate(d.url("/history"))
	tb.waitLive()

	rows := `[...document.querySelectorAll("#hist-body tr")]`
	tb.waitFor("the first page", rows+`.length === 50 && !document.getElementById("hist-more-wrap").hidden`)
	first := eval[[]string](tb, rows+`.slice(0, 2).map((r) => r.innerText.replace(/\s+/g, " ").trim())`)
	if first[0] != "2 minutes ago ARCHIVE_LAST Completed 3 of 3 4.2 GB 2 min" { // when it was queued, and 90 s taken

		t.Errorf("newest row reads %q, want when, preset, status, files, size and time taken", first[0])
	}
	if !strings.HasSuffix(first[1], "minutes ago Open LoRA OPEN_LORA The connection was reset while reading the file. Failed 0 of 1 1.0 KB of 1.0 MB 5 s Retry") {
		t.Errorf("the failed row reads %q", first[1])
	}
	failed := `document.querySelector('#hist-body tr[data-id="53"]')`
	if got := eval[string](tb, failed+`.querySelector(".hist-err").textContent`); got != "The connection was reset while reading the file." {
		t.Errorf("the failed row's error reads %q", got)
	}
	if eval[bool](tb, failed+`.querySelector('[data-action="retry"]').hidden`) || !eval[bool](tb, `document.querySelector('#hist-body tr[data-id="54"] [data-action="retry"]').hidden`) {
		t.Error("Retry should show on the failed row only")
	}
	if got := eval[string](tb, failed+`.querySelector(".hist-name").textContent`); got != "Open LoRA" {
		t.Errorf("the preset's name reads %q", got)
	}
	tb.click("#hist-more")
	tb.waitFor("all 54", rows+`.length === 54 && document.getElementById("hist-more-wrap").hidden && `+rows+`.at(-1).dataset.id === "1"`)

	// Retry: the new download arrives on top, live, and the old row has been retried.
	tb.click(`#hist-body tr[data-id="53"] [data-action="retry"]`)
	tb.waitForWithin("the retried download on top, completed", `(() => { const r = `+rows+`[0]; return r.dataset.id === "55" && r.dataset.status === "completed" && r.querySelector(".hist-name").textContent === "Open LoRA" && r.innerText.includes("1 of 1") && r.innerText.includes("1.0 MB"); })()`, 20*time.Second)
	tb.waitFor("no second Retry on the old row", failed+`.querySelector('[data-action="retry"]').hidden`)

	// A download that fails while the page is open shows up with its reason.
	d.mustAPI("POST", "/api/presets/LICENSED_MODEL/install", nil, http.StatusAccepted, nil)
	tb.waitForWithin("the live failure", `(() => { const r = `+rows+`[0]; return r.dataset.id === "56" && r.dataset.status === "failed" && r.querySelector(".hist-err").textContent.includes("licence") && !r.querySelector('[data-action="retry"]').hidden; })()`, 20*time.Second)
	var hist struct {
		History []model.DownloadRecord `json:"history"`
	}
	d.mustAPI("GET", "/api/downloads/history?limit=2", nil, http.StatusOK, &hist)
	if len(hist.History) != 2 || hist.History[0].Error == nil || hist.History[0].Error.Code != model.CodeHFAccessDenied || hist.History[1].BytesDone != 1<<20 {
		t.Fatalf("history API: %+v", hist.History)
	}
}

// seedHistory writes 54 finished downloads into a new workspace's database:
// 52 archived ones, a failed Open LoRA (53) and the newest (54).
func seedHistory(t *testing.T, ws string) {
	t.Helper()
	dataDir := filepath.Join(ws, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().Add(-time.Hour)
	store, err := db.Open(context.Background(), filepath.Join(dataDir, "dashboard.db"), db.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	add := func(preset string, end model.DownloadEnd, took time.Duration) {
		rec, err := store.StartDownload(ctx, preset, end.FilesTotal)
		if err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(took)
		if err := store.FinishDownload(ctx, rec.ID, end); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second)
	}
	for i := 1; i <= 52; i++ {
		add(fmt.Sprintf("ARCHIVE_%02d", i), model.DownloadEnd{Status: model.DownloadCompleted, FilesCompleted: 1, FilesTotal: 1, BytesDone: 1e6, BytesTotal: 1e6}, time.Second)
	}
	add("OPEN_LORA", model.DownloadEnd{Status: model.DownloadFailed, FilesTotal: 1, BytesDone: 1000, BytesTotal: 1 << 20,
		Error: &model.Error{Code: model.CodeNetwork, Message: "the connection was reset while reading the file"}}, 5*time.Second)
	// The newest was queued 90 s ago and has just ended.
	clock = time.Now().Add(-90 * time.Second)
	add("ARCHIVE_LAST", model.DownloadEnd{Status: model.DownloadCompleted, FilesCompleted: 3, FilesTotal: 3, BytesDone: 4.2e9, BytesTotal: 4.2e9}, 90*time.Second)
}

// notifyProbe runs before every page of the tab: document.visibilityState
// follows window.__hidden, and every Notification made (and whether it was
// closed) and every window.focus() is recorded.
const notifyProbe = `(() => {
  window.__hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get() { return window.__hidden ? "hidden" : "visible"; } });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get() { return !!window.__hidden; } });
  window.__notes = [];
  window.__focused = 0;
  const focus = window.focus.bind(window);
  window.focus = () => { window.__focused++; focus(); };
  const Real = window.Notification;
  if (!Real) return;
  // The page sees "default" until it asks; the answer is the test's
  // (__permAnswer), kept across pages as a browser would. The browser
  // itself has granted it, so notes are made.
  window.__perm = localStorage.getItem("__perm") || "default";
  window.__permAnswer = "granted";
  window.__asked = 0;
  window.Notification = class extends Real {
    static get permission() { return window.__perm; }
    static requestPermission() {
      window.__asked++;
      window.__perm = window.__permAnswer;
      localStorage.setItem("__perm", window.__perm);
      return Promise.resolve(window.__perm);
    }
    constructor(title, options) {
      super(title, options);
      window.__notes.push({ title, body: (options && options.body) || "", tag: (options && options.tag) || "", closed: false, note: this });
    }
    close() {
      for (const n of window.__notes) if (n.note === this) n.closed = true;
      super.close();
    }
  };
})();`

type note struct {
	Title  string `json:"title"`
	Body   string `json:"body"`
	Tag    string `json:"tag"`
	Closed bool   `json:"closed"`
}

const notesJS = `window.__notes.map(({ title, body, tag, closed }) => ({ title, body, tag, closed }))`

// Notifications: turned on in Settings (the browser's permission asked and
// granted), a hidden tab shows one for each download that ends and each
// generation that completes or fails; a visible tab shows none, nor does a
// hidden one with the setting off. Clicking one brings the dashboard forward.
func TestNotificationsWhenHidden(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	d := startDashboard(t, hf, dashOptions{presets: testPresets, env: []string{"HF_TOKEN=" + goodToken}})
	tb := newTab(t, newBrowser(t), "notifications")
	if _, err := chromedp.Call(tb.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: notifyProbe}); err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(d.url("/"), "/")
	if _, err := chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted, Origin: origin,
	}); err != nil {
		t.Fatalf("grant the notification permission: %v", err)
	}

	tb.navigate(d.url("/settings"))
	tb.waitLive()
	tb.waitFor("the switch, off", `document.getElementById("notify-switch") && !document.getElementById("notify-switch").checked`)
	// Turning it on asks the browser; a refusal leaves it off and says why.
	tb.do("refuse the next ask", chromedp.Evaluate[chromedp.Void](`window.__permAnswer = "denied"`))
	tb.click("#notify-switch")
	tb.waitFor("refused", `window.__asked === 1 && !document.getElementById("notify-switch").checked && document.getElementById("notify-msg").textContent.includes("does not allow notifications")`)
	tb.do("allow the next ask", chromedp.Evaluate[chromedp.Void](`window.__perm = "default"; window.__permAnswer = "granted"`))
	tb.click("#notify-switch")
	tb.waitFor("turned on", `window.__asked === 2 && document.getElementById("notify-switch").checked && document.getElementById("notify-msg").dataset.kind === "success" && document.activeElement.id === "notify-switch"`)
	var s struct {
		Notifications bool `json:"notifications"`
	}
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if !s.Notifications {
		t.Fatal("the setting was not saved")
	}

	tb.navigate(d.url("/"))
	tb.waitLive()
	// Visible: nothing.
	installAndWait(t, d, "OPEN_LORA")
	d.addActivity("generation", "completed", "2 images generated", "visible.json", nil)
	tb.waitFor("the activity arrived", `document.querySelector("#recent-list .act-title").textContent === "2 images generated"`)
	if n := eval[[]note](tb, notesJS); len(n) != 0 {
		t.Fatalf("notifications while the tab is visible: %+v", n)
	}

	// Hidden: one per event.
	tb.do("hide the tab", chromedp.Evaluate[chromedp.Void](`window.__hidden = true; document.dispatchEvent(new Event("visibilitychange"))`))
	id := installAndWait(t, d, "GATED_CLIP")
	d.addActivity("generation", "started", "Generation started", "portrait.json", nil)
	d.addActivity("generation", "completed", "4 images generated", "portrait.json", nil)
	d.addActivity("generation", "failed", "Generation failed", "CUDA out of memory", nil)
	tb.waitFor("three notifications", `window.__notes.length >= 3`)
	time.Sleep(300 * time.Millisecond) // a fourth would be a duplicate
	got := eval[[]note](tb, notesJS)
	want := []note{
		{Title: "Downloaded Gated Text Encoder", Body: "1 file is in place.", Tag: fmt.Sprintf("download-%d", id)},
		{Title: "4 images generated", Body: "portrait.json"},
		{Title: "Generation failed", Body: "CUDA out of memory"},
	}
	if len(got) != len(want) {
		t.Fatalf("notifications %+v, want %d", got, len(want))
	}
	for i := range want {
		if got[i].Title != want[i].Title || got[i].Body != want[i].Body || (want[i].Tag != "" && got[i].Tag != want[i].Tag) || got[i].Tag == "" {
			t.Errorf("notification %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// A click brings the dashboard forward and closes it.
	tb.do("click the first", chromedp.Evaluate[chromedp.Void](`window.__notes[0].note.dispatchEvent(new Event("click"))`))
	if !eval[bool](tb, `window.__focused === 1 && window.__notes[0].closed`) {
		t.Error("clicking the notification did not focus the dashboard and close it")
	}

	// Off: nothing more, even hidden.
	d.mustAPI("PATCH", "/api/settings", map[string]any{"notifications": false}, http.StatusOK, nil)
	d.addActivity("generation", "completed", "After turning off", "", nil)
	tb.waitFor("the last activity", `document.querySelector("#recent-list .act-title").textContent === "After turning off"`)
	if n := eval[[]note](tb, notesJS); len(n) != 3 {
		t.Fatalf("%d notifications after turning them off, want still 3", len(n))
	}
}

// installAndWait installs a preset and waits for its download to complete.
func installAndWait(t *testing.T, d *dashboard, preset string) int64 {
	t.Helper()
	var dl struct {
		ID int64 `json:"id"`
	}
	d.mustAPI("POST", "/api/presets/"+preset+"/install", nil, http.StatusAccepted, &dl)
	waitDownloads(t, d, map[string]string{preset: "completed"})
	return dl.ID
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}
