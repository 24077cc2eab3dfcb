package transport

// MaxFrameBytes bounds one encoded message. Decoders reject anything larger
// before allocating for it.
const MaxFrameBytes = 4 << 20

// AppendRequest appends the encoding of r to b and returns the extended slice.
func AppendRequest(b []byte, r *Request) []byte { panic("unimplemented") }

// DecodeRequest decodes one request. The result shares no memory with b.
func DecodeRequest(b []byte) (*Request, error) { panic("unimplemented") }

// AppendResponse appends the encoding of r to b and returns the extended slice.
func AppendResponse(b []byte, r *Response) []byte { panic("unimplemented") }

// DecodeResponse decodes one response. The result shares no memory with b.
func DecodeResponse(b []byte) (*Response, error) { panic("unimplemented") }
