package marketing
