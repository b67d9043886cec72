use leak_check::leak_check;

async fn double(n: u32) -> u32 {
    leak_check::spawn(async move { n * 2 }).await.unwrap()
}

#[leak_check(grace_ms = 250, allow_names = ["metrics-*"])]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checked_with_the_modules_controls() {
        assert_eq!(double(2).await, 4);
    }

    #[leak_check(grace_ms = 1000)] // wins over the module's grace_ms; its allow_names still apply
    #[tokio::test(flavor = "multi_thread")]
    async fn checked_with_its_own_grace() {
        assert_eq!(double(3).await, 6);
    }

    #[leak_check(off)]
    #[tokio::test]
    async fn not_checked() {
        leak_check::spawn(std::future::pending::<()>()); // a leak, and nobody looks
    }
}
