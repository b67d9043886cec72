use leak_check::leak_check;

#[leak_check(grace = 200)]
mod tests {
    #[tokio::test]
    async fn checked() {}
}

fn main() {}
