use leak_check::leak_check;

#[leak_check(grace_ms = 200, flavor = "multi_thread")]
mod tests {
    #[tokio::test]
    async fn checked() {}
}

fn main() {}
