module threadhost.local/pause

go 1.26
