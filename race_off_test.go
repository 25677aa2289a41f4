//go:build !race

package main

// raceFactor is 1 without the race detector: the CPU budgets of these tests
// hold as written.
const raceFactor = 1
