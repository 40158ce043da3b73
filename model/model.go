// Package model is the dashboard's vocabulary: the words every other package
// agrees on, each defined once. Activity types and statuses, download
// statuses, setting keys with their defaults and ranges, the names of
// WebSocket frames, and the one error shape (a code and a sentence) that
// every package returns and the server turns into HTTP answers.
//
// It imports nothing of ours, so the store, the workers and the server can
// all depend on it without depending on each other.
package model
