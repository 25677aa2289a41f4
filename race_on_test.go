//go:build race

package main

// raceFactor is how much more CPU the race detector makes the server
// spend: its documentation says 2 to 20 times; the budgets of CPU in these
// tests are the server's own, without it.
const raceFactor = 10
