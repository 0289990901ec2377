module github.com/iked/iked

go 1.26
