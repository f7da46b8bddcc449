//! Turns files on disk into a ready model: GGUF / safetensors weights, the tokenizer and the chat
//! template. `load` is the one entry point the server uses.
