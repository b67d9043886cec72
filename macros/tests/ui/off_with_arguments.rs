use leak_check::leak_check;

#[leak_check(grace_ms = 200)]
mod tests {
    #[leak_check(off, grace_ms = 500)]
    #[tokio::test]
    async fn opted_out() {}
}

fn main() {}
