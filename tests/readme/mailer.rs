use leak_check::leak_check;
use tokio::sync::mpsc;

/// Sends mail from a worker task, which puts a mail that failed back in its inbox to retry it.
struct Mailer {
    inbox: mpsc::Sender<String>,
}

impl Mailer {
    fn start() -> Mailer {
        let (inbox, mut mails) = mpsc::channel::<String>(16);
        let retry = inbox.clone();
        leak_check::spawn(async move {
            while let Some(mail) = mails.recv().await {
                if deliver(&mail).is_err() {
                    let _ = retry.try_send(mail);
                }
            }
        });
        Mailer { inbox }
    }

    async fn send(&self, mail: &str) {
        self.inbox.send(mail.to_owned()).await.unwrap();
    }
}

/// Hands a mail to the mail server (which, here, takes every mail).
fn deliver(_mail: &str) -> Result<(), String> {
    Ok(())
}

#[ignore = "leaks on purpose: tests/readme.rs runs it and reads its report"]
#[leak_check]
#[tokio::test]
async fn sends_a_welcome_mail() {
    let mailer = Mailer::start();
    mailer.send("welcome").await;
    // `mailer` is dropped here, and with it the inbox's sender: the worker should end
}
