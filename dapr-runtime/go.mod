// Pins the official Dapr runtime that threadhost runs on. Nothing here is
// threadhost code: build.sh compiles daprd, placement and scheduler from
// this module graph, fetched through the Go module proxy.
//
// v1.18.2, not v1.18.3: the proxy reachable from our machines refuses three
// modules of v1.18.3's graph (durabletask-go v0.12.4, iskorotkov/avro v2.33.1
// and the twmb pulsar-client-go fork); v1.18.2's whole graph is served.
module threadhost.dev/dapr-runtime

go 1.26.5

require github.com/dapr/dapr v1.18.2

// The runtime's own go.mod carries these replace directives; a module that
// depends on it does not inherit them, so they are repeated here.
replace (
	dubbo.apache.org/dubbo-go/v3 => dubbo.apache.org/dubbo-go/v3 v3.0.3-0.20230118042253-4f159a2b38f3
	gopkg.in/couchbaselabs/gocbconnstr.v1 => github.com/couchbaselabs/gocbconnstr v1.0.5
)

replace (
	github.com/chenzhuoyu/iasm => github.com/chenzhuoyu/iasm v0.9.0
	github.com/chzyer/logex => github.com/chzyer/logex v1.2.1
	github.com/gobwas/pool => github.com/gobwas/pool v0.2.1
	github.com/toolkits/concurrent => github.com/niean/gotools v0.0.0-20151221085310-ff3f51fc5c60
)
