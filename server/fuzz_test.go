package server_test

import (
	"context"
	"dashboard/model"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// post sends body as JSON and returns the status and the decoded error code.
func post(t *testing.T, e *env, method, path string, body []byte) (int, string, []byte) {
	req, _ := http.NewRequest(method, e.URL+path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("answer is not JSON: %q", raw)
	}
	code := ""
	if env.Error != nil {
		if env.Error.Code == "" || env.Error.Message == "" {
			t.Fatalf("error without code or message: %s", raw)
		}
		code = env.Error.Code
	}
	return resp.StatusCode, code, raw
}

func FuzzActivityPost(f *testing.F) {
	for _, seed := range []string{
		`{"type":"download","status":"completed","title":"Model A","subtitle":"x","details":{"files":2}}`,
		`{"type":"generation","status":"started","title":"w"}`,
		`{"type":"error","status":"failed","title":"t","details":null}`,
		`{"type":"party","status":"started","title":"x"}`,
		`{"type":"download","status":"done","title":"x"}`,
		`{"type":"download","status":"started","title":""}`,
		`{"type":"download","status":"started","title":"x","details":[1]}`,
		`{"type":1}`, `[]`, `null`, `{`, `"x"`, ``, `{"id":3}`,
	} {
		f.Add([]byte(seed))
	}
	e := start(f, options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		status, code, raw := post(t, e, "POST", "/api/activity", body)
		switch {
		case status == 201 && code == "":
		case status >= 400 && status < 500 && code != "":
		default:
			t.Fatalf("POST /api/activity %q → %d %s", body, status, raw)
		}
	})
}

func FuzzSettingsPatch(f *testing.F) {
	for _, seed := range []string{
		`{"theme":"light"}`, `{"theme":"dark","activity_retention_days":7}`, `{"activity_retention_days":3650}`,
		`{"activity_retention_days":0}`, `{"activity_retention_days":1e3}`, `{"activity_retention_days":"7"}`,
		`{"theme":null}`, `{"hf_token":"hf_x"}`, `{"colour":"red"}`, `{}`, `[]`, `{"theme":"light"}x`, `{"theme":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	e := start(f, options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		status, code, raw := post(t, e, "PATCH", "/api/settings", body)
		switch {
		case status == 200 && code == "":
		case status >= 400 && status < 500 && code != "":
		default:
			t.Fatalf("PATCH /api/settings %q → %d %s", body, status, raw)
		}
		// Whatever came in, what is stored stays valid. The rows are read
		// as stored: the API's view would put defaults over bad values.
		kv, err := e.Store.Settings(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		days, err := strconv.Atoi(kv[model.SettingRetentionDays])
		if !model.ValidTheme(kv[model.SettingTheme]) || err != nil || !model.ValidRetentionDays(days) {
			t.Fatalf("stored settings became theme=%q retention=%q after %q", kv[model.SettingTheme], kv[model.SettingRetentionDays], body)
		}
		for k := range kv {
			switch k {
			case model.SettingTheme, model.SettingRetentionDays, model.SettingSessionKey:
			default:
				t.Fatalf("PATCH %q stored setting %q", body, k)
			}
		}
	})
}
