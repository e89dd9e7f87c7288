// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3 module.
//
// `go install go.etcd.io/etcd/server/v3@version` is refused because the
// server's go.mod carries replace directives, so this tiny main package pulls
// the server in as an ordinary dependency instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
