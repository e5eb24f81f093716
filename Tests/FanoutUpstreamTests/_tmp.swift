// filled by the http runner work
